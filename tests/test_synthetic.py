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
