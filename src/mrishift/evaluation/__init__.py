"""The evaluation layer: a trained model's predictions and per-scan scores (``scoring``, with the ``metrics``: surface
Dice, Dice, HD95, ASSD), its visual quality control (``qc``), and where fine-tuning moved it from its source model
(``weight_change``: per-block weight distance; ``similarity``: per-block CKA and PWCCA of the activations)."""
