"""Backbone registry (adult-CXR, ImageNet, random), pretrained weights, the BPD head."""
