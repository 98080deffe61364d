"""The adaptation layer: how a source model meets a new scanner. Fine-tuning strategies (``strategies``: which layers
train, with which penalty, batches or optimizer; ``gradient_transfer``: the gradient-transfer study's L2-SP, mixed
batches, optimizer continuation and SpotTune; ``scratch``: the from-random-initialisation references) and test-time
methods (``test_time``: no label), each one small class in a name registry (``registry``) with its hyper-parameters
declared beside it; the loss they build on (``losses``) and BatchNorm re-estimation (``batchnorm``)."""
