"""The model layer: the study's networks (2D and 3D U-Nets, with a learned input normaliser or SpotTune's gates),
built by name and naming their own layer groups (``networks``); what the workflow knows of each network without
importing torch (``architectures``: dimensions, levels, stride, layer groups); and what a network sees of a volume
(``inputs``: padded slices, sliding windows)."""
