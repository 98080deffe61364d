import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrishift.data import synthetic
from mrishift.data.integrity import check_dataset

SETTINGS = dict(native_spacing_mm=6.0, shift_strength=1.0, deformation_mm=4.0)


@pytest.fixture(scope="module")
def head():
    return synthetic.load_reference_head()


def arrays(pair):
    return [np.asanyarray(img.dataobj) for img in pair]


def test_generator_is_deterministic(head):
    first = synthetic.synthesize_subject(head, "ge_3", "CC0300", seed=5, **SETTINGS)
    again = synthetic.synthesize_subject(head, "ge_3", "CC0300", seed=5, **SETTINGS)
    other = synthetic.synthesize_subject(head, "ge_3", "CC0300", seed=6, **SETTINGS)
    for a, b in zip(arrays(first), arrays(again)):
        assert np.array_equal(a, b)
    assert np.array_equal(first[0].affine, again[0].affine)
    assert not np.array_equal(arrays(first)[1], arrays(other)[1])  # another seed deforms the head differently


def test_domains_differ_in_geometry_and_appearance(head):
    subjects = {d: synthetic.synthesize_subject(head, d, "CC0000", seed=1, **SETTINGS) for d in synthetic.SCANNERS}
    orientations = {d: "".join(nib.aff2axcodes(img.affine)) for d, (img, _) in subjects.items()}
    assert orientations["siemens_3"] == "PIR" and len(set(orientations.values())) == 6
    assert np.allclose(subjects["siemens_3"][0].header.get_zooms(), (6 * 1.33, 6, 6))
    assert np.allclose(subjects["philips_15"][0].header.get_zooms(), (6 * 0.889, 6 * 0.889, 6))
    # Bright scalp relative to brain (90th percentile outside the mask / brain mean): the skull-stripping cue
    # that differs per scanner. GE 1.5T and Philips 1.5T have a dark scalp, the others a bright one.
    ratios = {}
    for domain, (image, mask) in subjects.items():
        image, mask = arrays((image, mask))
        assert image.dtype == np.int16 and set(np.unique(mask)) == {0, 1}
        scalp = (mask == 0) & (image > 0.2 * image[mask == 1].mean())
        ratios[domain] = np.percentile(image[scalp], 90) / image[mask == 1].mean()
    bright = min(ratios[d] for d in ("siemens_15", "siemens_3", "ge_3", "philips_3"))
    assert bright > 2 * max(ratios["ge_15"], ratios["philips_15"])


def test_generated_dataset_passes_integrity(tmp_path):
    records = synthetic.generate(tmp_path, ["siemens_15", "philips_15"], n_subjects=2, seed=0, **SETTINGS)
    assert [r["case"] for r in records] == ["CC0120", "CC0121", "CC0001", "CC0002"]
    report = check_dataset(tmp_path, expected_cases=["CC0001", "CC0002", "CC0120", "CC0121"])
    assert report["status"].tolist() == ["ok"] * 4
    assert (tmp_path / "synthetic.json").exists()


def test_parallel_generation_writes_the_same_files(tmp_path):
    serial = synthetic.generate(tmp_path / "serial", ["ge_3", "philips_3"], n_subjects=2, seed=3, **SETTINGS)
    parallel = synthetic.generate(tmp_path / "parallel", ["ge_3", "philips_3"], n_subjects=2, seed=3, workers=2,
                                  **SETTINGS)
    assert [{k: v for k, v in r.items() if k not in ("image", "mask")} for r in parallel] == \
        [{k: v for k, v in r.items() if k not in ("image", "mask")} for r in serial]
    for one, other in zip(serial, parallel):
        for key in ("image", "mask"):
            first, second = nib.load(one[key]), nib.load(other[key])
            assert np.array_equal(first.affine, second.affine)
            assert np.array_equal(np.asanyarray(first.dataobj), np.asanyarray(second.dataobj))


# CC359's stored grids (mrishift.data.synthetic.CC359_GRIDS: evidence and inference listed there): array shape and
# spacing of each domain's first subject, and of a Philips 1.5T scan other than CC0001 (whose own grid is published)
CC359_GEOMETRY = {
    "CC0120": ("siemens_15", (176, 256, 256), (1.0, 1.0, 1.0)),
    "CC0180": ("siemens_3", (144, 256, 256), (1.33, 1.0, 1.0)),
    "CC0240": ("ge_15", (176, 256, 256), (1.0, 1.0, 1.0)),
    "CC0300": ("ge_3", (200, 256, 256), (1.0, 1.0, 1.0)),
    "CC0001": ("philips_15", (171, 256, 256), (1.0, 1.0, 1.0)),
    "CC0002": ("philips_15", (171, 288, 288), (1.0, 0.889, 0.889)),
    "CC0060": ("philips_3", (180, 240, 240), (1.0, 1.0, 1.0)),
}


def test_real_geometry_scans_have_cc359_shapes_and_spacings(tmp_path):
    domains = ["siemens_15", "siemens_3", "ge_15", "ge_3", "philips_15", "philips_3"]
    records = synthetic.generate(tmp_path, domains, n_subjects=1, seed=0, workers=2, geometry="cc359", **SETTINGS)
    head = synthetic.load_reference_head()
    image, mask = synthetic.synthesize_subject(head, "philips_15", "CC0002", 0, geometry="cc359", **SETTINGS)
    scans = {r["case"]: (nib.load(r["image"]), nib.load(r["mask"])) for r in records} | {"CC0002": (image, mask)}
    assert sorted(scans) == sorted(CC359_GEOMETRY)
    for case, (domain, shape, spacing) in CC359_GEOMETRY.items():
        image, mask = scans[case]
        assert image.shape == mask.shape == shape, case
        assert np.allclose(image.header.get_zooms(), spacing, atol=1e-4), case
        assert "".join(nib.aff2axcodes(image.affine)) == "RAS", case  # axis 0 sagittal, the last axial
        brain = np.argwhere(np.asanyarray(mask.dataobj) > 0)
        volume_ml = len(brain) * np.prod(spacing) / 1000
        assert 900 < volume_ml < 1700, (case, volume_ml)  # an adult brain, whatever the grid
        assert brain.min() > 0 and (brain.max(axis=0) < np.array(shape) - 1).all(), case  # inside the field of view
    assert check_dataset(tmp_path)["status"].tolist() == ["ok"] * 6
    assert json.loads((tmp_path / "synthetic.json").read_text())["geometry"] == "cc359"


def test_generation_resumes_with_the_subjects_a_killed_job_finished(tmp_path):
    fresh = synthetic.generate(tmp_path / "fresh", ["ge_3"], n_subjects=2, seed=3, **SETTINGS)

    class Killed(Exception):
        pass

    def killed_after_the_first(finished, total):
        for record in finished:
            yield record
            raise Killed

    killed = tmp_path / "killed"
    with pytest.raises(Killed):
        synthetic.generate(killed, ["ge_3"], n_subjects=2, seed=3, progress=killed_after_the_first, **SETTINGS)
    assert sorted(p.name for p in (killed / "records").iterdir()) == ["CC0300.json"]
    first = killed / synthetic.IMAGE_FOLDER / Path(fresh[0]["image"]).name
    written = first.stat().st_mtime_ns
    resumed = synthetic.generate(killed, ["ge_3"], n_subjects=2, seed=3, **SETTINGS)
    assert first.stat().st_mtime_ns == written  # kept, not made again
    assert [r["case"] for r in resumed] == ["CC0300", "CC0301"]
    for one, other in zip(fresh, resumed):
        for key in ("image", "mask"):
            assert np.array_equal(np.asanyarray(nib.load(one[key]).dataobj),
                                  np.asanyarray(nib.load(other[key]).dataobj))
    assert sorted(p.name for p in killed.iterdir()) == ["Original", "Silver-standard", "synthetic.json"]
    assert (killed / "synthetic.json").read_text() == (tmp_path / "fresh" / "synthetic.json").read_text().replace(
        str(tmp_path / "fresh"), str(killed))
    with pytest.raises(Killed):  # killed again, then asked for another seed: none of the other dataset is kept
        synthetic.generate(killed, ["ge_3"], n_subjects=2, seed=3, progress=killed_after_the_first, **SETTINGS)
    synthetic.generate(killed, ["ge_3"], n_subjects=1, seed=4, **SETTINGS)
    assert len(list((killed / synthetic.IMAGE_FOLDER).iterdir())) == 1  # seed 3's CC0301 is gone
