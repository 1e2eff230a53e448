"""From files on disk to training batches; nothing here knows the network.

``layouts`` find subjects' files (never pixels); ``nifti`` reads and writes NIfTI files (the one place);
``preprocess/`` turns one subject into checked, normalized arrays; ``cache`` stores them memory-mapped;
``splits``, ``sampler``, ``slices``, ``augment``, ``augment_batch`` and ``datamodule`` feed Lightning;
``brain_mask`` estimates a mask for new patients; ``subject`` is the record a layout finds. Entry points:
``check`` (``mutual-seg-check``) and ``synthetic/`` (``mutual-seg-synthetic``, the synthetic UCSF-PDGM set).
"""
