"""Batches assembled on the device equal the host's; runs trained several at once equal runs trained alone.

Everything here runs on the CPU in CI; the ``cuda`` cases run where a GPU is present (the device tool's machine)."""

import json

import numpy as np
import pytest
import torch

from mrishift.data.volumes import save_volume
from mrishift.models import networks
from mrishift.training.jobs import Job, Run, train_runs
from mrishift.training.loop import Recipe
from mrishift.training.sampling import SliceSampler

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def volumes(seed=1):
    """Three volumes: one larger than the 16² patch, one larger along one axis only, one smaller along both."""
    rng = np.random.default_rng(seed)
    shapes = [(20, 23, 5), (30, 12, 4), (9, 7, 3)]
    return [(rng.random(shape, dtype=np.float32), (rng.random(shape) > 0.5).astype(np.float32)) for shape in shapes]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("augment_p", [0.0, 0.5, 1.0])
def test_device_batches_equal_host_batches(device, augment_p):
    data = volumes()
    slices = [range(5), range(4), range(3)]
    host = SliceSampler(data, slices, 64, 16, augment_p, np.random.default_rng(3))
    held = SliceSampler(data, slices, 64, 16, augment_p, np.random.default_rng(3)).to_device(device)
    for _ in range(4):
        (images, masks), (held_images, held_masks) = host.batch(), held.batch()
        assert held_images.device.type == device
        assert torch.equal(images, held_images.cpu()) and torch.equal(masks, held_masks.cpu())
    assert host.rng.bit_generator.state == held.rng.bit_generator.state  # the same draws, the same number of them


def test_device_batches_rotate_and_flip_like_numpy():
    """Known answer: one 4 × 4 slice of 0..15, every flip and rotation the draw can ask for."""
    image = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    sampler = SliceSampler([(image, image)], [[0]], 1, 4, 0.0, np.random.default_rng(0)).to_device("cpu")
    from mrishift.training.sampling import Draw

    for flip_x in (False, True):
        for flip_y in (False, True):
            for turn in range(4):
                expected = image[:, :, 0]
                expected = expected[::-1] if flip_x else expected
                expected = expected[:, ::-1] if flip_y else expected
                expected = np.rot90(expected, turn)
                draw = Draw(np.array([0]), np.array([[0, 0]]), np.array([[flip_x, flip_y]]), np.array([turn]))
                assert np.array_equal(sampler._gather(draw)[0][0, 0].numpy(), expected)


def write_cases(data_dir, n=3):
    """{case: (image, mask) files} of n small scans."""
    files = {}
    for i, (image, mask) in enumerate(volumes(seed=7)[:1] * n):
        case = f"CC{i:04d}"
        files[case] = (str(data_dir / f"{case}_image.nii.gz"), str(data_dir / f"{case}_mask.nii.gz"))
        save_volume(files[case][0], image + i * 0.01, np.eye(4))
        save_volume(files[case][1], mask, np.eye(4))
    return files


def finetune_job(tmp_path, device, runs_per_device, cases, source, files):
    out = tmp_path / f"job{runs_per_device}"
    recipe = Recipe(epochs=2, iters_per_epoch=3, batch_size=4, patch_size=16, lr=0.05, lr_drop_epoch=0,
                    device=device, deterministic=True)
    job = Job(role="finetune", arch="unet2d_residual", width=0.25, arm="ft_first", hparams={}, recipe=recipe,
              scans=files)
    runs = [Run({"role": "finetune", "source": "a", "target": case, "budget": "1scan", "seed": 0}, [case],
                str(out / case / "model.pt"), str(out / case / "record.json"), str(out / "checkpoints" / f"{case}.pt"),
                slices=[[0, 2, 4]], start_from=source) for case in cases]
    train_runs(job, runs, runs_per_device=runs_per_device, threads=1)
    return runs


@pytest.mark.parametrize("device", DEVICES)
def test_runs_trained_at_once_equal_runs_trained_alone(tmp_path, device):
    files = write_cases(tmp_path / "data")
    cases = list(files)
    torch.manual_seed(0)
    source = tmp_path / "source.pt"
    torch.save({"arch": "unet2d_residual", "width": 0.25, "model": networks.build("unet2d_residual", width=0.25)
                .state_dict()}, source)
    alone = finetune_job(tmp_path, device, 1, cases, str(source), files)
    together = finetune_job(tmp_path, device, 2, cases, str(source), files)
    seeds = set()
    for one, other in zip(alone, together, strict=True):
        weights = torch.load(one.model_path, weights_only=True)["model"]
        others = torch.load(other.model_path, weights_only=True)["model"]
        difference = max(float((weights[name].double() - others[name].double()).abs().max()) for name in weights)
        record, other_record = (json.loads(open(run.record_path).read()) for run in (one, other))
        print(f"{device}: largest weight difference {difference:.3g}; losses {record['losses']} vs "
              f"{other_record['losses']}")
        assert difference == 0.0
        assert record["losses"] == other_record["losses"] and record["seed"] == other_record["seed"]
        seeds.add(record["seed"])
    assert len(seeds) == len(cases)  # each run its own seed, from its identity
    initial = networks.build("unet2d_residual", width=0.25)
    initial.load_state_dict(torch.load(source, weights_only=True)["model"])
    trained = torch.load(alone[0].model_path, map_location="cpu", weights_only=True)["model"]
    assert not torch.equal(initial.state_dict()["init.weight"], trained["init.weight"])  # it did train


def test_a_failing_run_fails_the_job_and_names_the_run(tmp_path):
    files = write_cases(tmp_path / "data", n=1)
    with pytest.raises(RuntimeError, match="'target': 'CC0009'"):
        finetune_job(tmp_path, "cpu", 2, ["CC0000", "CC0009"], None, files)


def test_device_batches_keep_non_binary_masks_exactly():
    """A soft mask (e.g. interpolated) is held as float32, not rounded into uint8."""
    data = [(image, image * 0.5) for image, _ in volumes()]
    host = SliceSampler(data, [range(5), range(4), range(3)], 32, 16, 0.5, np.random.default_rng(3))
    held = SliceSampler(data, [range(5), range(4), range(3)], 32, 16, 0.5, np.random.default_rng(3)).to_device("cpu")
    (_, masks), (_, held_masks) = host.batch(), held.batch()
    assert torch.equal(masks, held_masks) and 0 < float(masks.max()) < 0.5 + 1e-6
