"""Elastic (weight-slicing) layers and the OFAv2 super-network. Static networks live in factory.nn."""

from factory.elastic.bn import elastic_batch_norm
from factory.elastic.kernel import ElasticDepthwiseConv
from factory.elastic.mbconv import ElasticMBConv, ElasticSE
from factory.elastic.parallel import ElasticParallelLevel
from factory.elastic.registry import build_supernet, list_supernets, register_supernet
from factory.elastic.stage import ElasticStage
from factory.elastic.supernet import OFASupernet, build_supernets

__all__ = [
    "ElasticDepthwiseConv",
    "ElasticMBConv",
    "ElasticParallelLevel",
    "ElasticSE",
    "ElasticStage",
    "OFASupernet",
    "build_supernet",
    "build_supernets",
    "elastic_batch_norm",
    "list_supernets",
    "register_supernet",
]
