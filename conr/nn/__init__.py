"""The CoNR networks: backbones with torchvision parameter names, the UDP detector, the collaborative
renderer, and :class:`CoNR` holding them with one shared encoder."""
from conr.nn.backbones import VGG19, PlainEncoder, ResNet, resnet18, resnet34, resnet50
from conr.nn.conr import CoNR, TrainOutput
from conr.nn.detector import DetectorDecoder, fuse_detections
from conr.nn.renderer import CollaborativeRenderer, Sheet, UNetRenderer

__all__ = ["VGG19", "CoNR", "CollaborativeRenderer", "DetectorDecoder", "PlainEncoder", "ResNet", "Sheet",
           "TrainOutput", "UNetRenderer", "fuse_detections", "resnet18", "resnet34", "resnet50"]
