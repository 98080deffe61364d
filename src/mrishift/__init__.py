"""mrishift: which U-Net layers to fine-tune when a brain-MRI segmentation network meets a new scanner.

The library reads as its layers, each a package that imports only the ones before it (tested):

    data → models → adaptation → evaluation → training → analysis → reporting

(evaluation comes before training because training validates its runs with evaluation's scoring).

and, on top, the study itself: ``config`` (a validated config), ``plan`` (which runs and jobs a config means),
``cost`` (their bill), ``cluster`` (the cluster profile's checks) and ``cli`` (the ``mrishift`` command). ``io``,
``logs``, ``console``, ``seeding`` and ``jobenv`` are the plumbing every layer may use.
"""

__version__ = "0.1.0"
