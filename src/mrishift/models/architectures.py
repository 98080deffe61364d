"""What the workflow knows of each network without building one: its spatial dimensions, default resolution levels,
input stride and the names of its variants. The workflow reads this when it is parsed (and again at the start of
every cluster job), so it imports no torch; mrishift.models.networks registers each network class under these names and
checks, when it is imported, that the class says the same."""

from __future__ import annotations

# name -> (spatial dimensions convolved, resolution levels by default)
_PLAIN = {"unet2d_residual": (2, 4), "unet3d_residual": (3, 4), "unet_vanilla": (2, 5)}
NORMALIZED = "_normalized"  # suffix of every plain network's variant with a normalizer CNN in front
SPOTTUNE = "_spottune"  # suffix of every plain network's SpotTune variant (what the spottune strategy trains)
LAYER_GROUPS = ("first", "last", "last2", "output", "encoder", "decoder")  # every model's layer_groups() has these keys


def names() -> list[str]:
    """Every registered network: the plain ones and their normalized and SpotTune variants."""
    return sorted(name + suffix for name in _PLAIN for suffix in ("", NORMALIZED, SPOTTUNE))


def plain_name(name: str) -> str:
    """The plain network a registered name is a variant of (``unet2d_residual`` for ``unet2d_residual_spottune``);
    an unknown name raises, listing the known ones."""
    if name not in names():
        raise ValueError(f"unknown model {name!r}; known: {names()}")
    return name.removesuffix(NORMALIZED).removesuffix(SPOTTUNE)


def dims(name: str) -> int:
    """How many spatial dimensions a registered network convolves: 2 (slices) or 3 (patches of the volume)."""
    return _PLAIN[plain_name(name)][0]


def default_levels(name: str) -> int:
    """A registered network's resolution levels when the config does not change them."""
    return _PLAIN[plain_name(name)][1]


def stride(name: str, levels: int | None = None) -> int:
    """What every input side of a registered network with this many resolution levels (None: its own default) must
    be a multiple of: 2 per downsampling."""
    return 2 ** ((levels or default_levels(name)) - 1)


def size_suffix(size: dict) -> str:
    """A network-size variant's name suffix (``models.sizes`` entry): ``_w2`` for width 2, ``_l5`` for 5 levels."""
    return (f"_w{size['width']:g}" if "width" in size else "") + (f"_l{size['levels']}" if "levels" in size else "")
