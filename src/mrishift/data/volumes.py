"""Reading and writing NIfTI volumes, with errors that name the file.

Array convention used everywhere in mrishift: arrays are indexed in the file's storage order (i, j, k), as
nibabel returns them. After preprocessing every scan is in RAS orientation, so axis 2 runs inferior→superior
and ``volume[:, :, k]`` is axial slice ``k``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from mrishift.io import atomic_path


class VolumeError(ValueError):
    """A volume file that cannot be used; the message names the file and the problem."""


@dataclass
class Volume:
    array: np.ndarray
    affine: np.ndarray  # voxel (i, j, k) -> RAS+ world, mm

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def orientation(self) -> str:
        return "".join(nib.aff2axcodes(self.affine))


def load_volume(path: str | os.PathLike, dtype=np.float32) -> Volume:
    """Load a 3D NIfTI volume; raise ``VolumeError`` naming the file if it is unreadable or not 3D."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: file does not exist")
    try:
        image = nib.load(str(path))
        array = np.asarray(image.dataobj, dtype=dtype)
    except Exception as error:  # nibabel raises many types for corrupt headers and truncated gzip
        raise VolumeError(f"{path}: unreadable or corrupt NIfTI ({type(error).__name__}: {error})") from error
    if array.ndim != 3:
        raise VolumeError(f"{path}: expected a 3D volume, found {array.ndim}D with shape {array.shape}")
    return Volume(array, image.affine.copy())


def save_volume(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a NIfTI volume atomically with both qform and sform set to the given affine."""
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))


def read_sitk(path: str | os.PathLike, pixel_type=sitk.sitkFloat32) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path), pixel_type)
    except RuntimeError as error:
        raise VolumeError(f"{path}: SimpleITK cannot read it ({str(error).strip().splitlines()[-1]})") from error


def write_sitk(path: str | os.PathLike, image: sitk.Image) -> None:
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
