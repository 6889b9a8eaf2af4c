"""Repeat-factor sampling: the LVIS formula, the sampler's draw and shards, and real training with resume."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import resume_run, run_ddp, run_recipe, write_recipe

from yolocustom.features.repeat_factor import RepeatFactorSampler, compute_repeat_factors


def test_factors_match_the_lvis_formula() -> None:
    # 10 images, 3 classes: class 0 in 8 images, class 1 in 2, class 2 in 1; one image has no labels
    images = [[0], [0, 0], [0, 1], [0], [0], [0], [0, 2], [0], [1, 1], []]
    t = 0.5
    rf = compute_repeat_factors(images, nc=3, threshold=t)
    assert rf.image_fraction == pytest.approx([0.8, 0.2, 0.1])
    r = [1.0, math.sqrt(t / 0.2), math.sqrt(t / 0.1)]  # max(1, sqrt(t / f_c)): 1, 1.58, 2.24
    assert rf.klass == pytest.approx(r)
    expected = [1, 1, r[1], 1, 1, 1, r[2], 1, r[1], 1]  # an image takes its rarest class's factor; unlabeled: 1
    assert rf.image == pytest.approx(expected)
    assert rf.expected_images() == pytest.approx(sum(expected))
    before, after = rf.instance_shares(3)
    assert before == pytest.approx([9 / 13, 3 / 13, 1 / 13])
    r1, r2 = r[1], r[2]
    weighted = [7 + r1 + r2, 3 * r1, r2]  # instances x their image's factor, per class
    assert after == pytest.approx([w / sum(weighted) for w in weighted])
    assert after[1] > before[1] and after[2] > before[2] and after[0] < before[0]


def test_draw_is_floor_plus_bernoulli_seeded_by_seed_and_epoch() -> None:
    factors = [1.0, 1.5, 2.25, 3.0, 1.0, 1.1]
    sampler = RepeatFactorSampler(factors, seed=7)
    lengths = set()
    for epoch in range(40):
        counts = Counter(sampler.draw(epoch).tolist())
        for i, r in enumerate(factors):
            assert counts[i] in {math.floor(r), math.floor(r) + (r % 1 > 0)}
        lengths.add(len(sampler.draw(epoch)))
        again = RepeatFactorSampler(factors, seed=7).draw(epoch)
        assert np.array_equal(again, sampler.draw(epoch))  # same seed and epoch: same list
    assert len(lengths) > 1  # stochastic rounding: the epoch length varies
    mean = np.mean([len(sampler.draw(e)) for e in range(400)])
    assert mean == pytest.approx(sum(factors), rel=0.02)
    assert not np.array_equal(RepeatFactorSampler(factors, seed=8).draw(0), sampler.draw(0))


def test_two_ranks_get_disjoint_equal_shards_of_the_same_list() -> None:
    factors = [1.0, 2.5, 1.3, 1.0, 4.0, 1.0, 1.7]
    for epoch in range(5):
        full = RepeatFactorSampler(factors, seed=3).draw(epoch)
        shards = []
        for rank in range(2):
            sampler = RepeatFactorSampler(factors, seed=3, rank=rank, world_size=2)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(sampler) == len(shards[-1]) == math.ceil(len(full) / 2)
        positions = [set(range(r, 2 * len(shards[0]), 2)) for r in range(2)]
        assert not positions[0] & positions[1]  # rank k takes positions k, k + 2, ...: disjoint
        merged = [x for pair in zip(*shards) for x in pair]
        assert merged[: len(full)] == full.tolist()  # together they are exactly the epoch's list (+1 wrap pad)


def test_sampler_after_a_prefetched_pass_and_a_reset() -> None:
    """A prefetching loader starts the next pass before set_epoch; a reset must replay the current epoch."""
    sampler = RepeatFactorSampler([1.0, 2.5, 1.5], seed=1)
    sampler.set_epoch(0)
    assert list(sampler) == sampler.draw(0).tolist()
    assert list(sampler) == sampler.draw(1).tolist()  # prefetch of epoch 1 before the trainer gets there
    sampler.set_epoch(1)  # no-op for the draw: the pass for epoch 1 has already started
    assert list(sampler) == sampler.draw(2).tolist()
    sampler.set_epoch(2)
    sampler.rewind()  # the loader threw its iterator away (close_mosaic)
    assert list(sampler) == sampler.draw(2).tolist()


def _record_images(seen: dict[int, list[str]]) -> dict[str, Any]:
    """Callbacks recording, per epoch, the image files the train loader really delivered."""

    def setup(trainer: Any) -> None:
        loader = trainer.train_loader
        if getattr(loader, "_yc_recording", False):
            return
        collate = loader.collate_fn

        def recording(batch: list[dict[str, Any]]) -> Any:
            seen.setdefault(trainer.epoch, []).extend(Path(s["im_file"]).name for s in batch)
            return collate(batch)

        loader.collate_fn = recording
        loader._yc_recording = True

    return {"on_pretrain_routine_end": setup}


@pytest.fixture(scope="module")
def sampled_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3-epoch run, and the same run stopped after epoch 1 and resumed, on 120 generated images (the loader's
    sequence is the point, not learning). Only the train loader is observed, so validation runs only after the last
    epoch (``val: false``; Ultralytics still validates the final one)."""
    from yolocustom.demo_data import generate_demo_dataset

    features = {"repeat_factor_sampling": {"threshold": 0.5}}
    full: dict[int, list[str]] = {}
    folder = tmp_path_factory.mktemp("rfs")
    data = generate_demo_dataset(folder / "shapes", n_train=120, n_val=8, img_size=32, seed=0, rare_ratio=5)
    train = {"epochs": 3, "batch": 16, "val": False}
    trainer = run_recipe(write_recipe(folder / "a", data, features, **train), _record_images(full))

    part: dict[int, list[str]] = {}

    def stop(t: Any) -> None:
        if t.epoch == 0:
            raise KeyboardInterrupt

    recipe_b = write_recipe(folder / "b", data, features, **train)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe_b, {**_record_images(part), "on_fit_epoch_end": stop})
    last = folder / "b" / "runs" / "run" / "weights" / "last.pt"
    resume_run(last, _record_images(part))
    return {"trainer": trainer, "full": full, "part": part}


def test_epochs_follow_the_factors_and_resume_replays_them(sampled_runs: dict[str, Any]) -> None:
    trainer, full, part = sampled_runs["trainer"], sampled_runs["full"], sampled_runs["part"]
    dataset = trainer.train_loader.dataset
    names = [Path(f).name for f in dataset.im_files]
    factors = trainer.yc_repeat_factors.image
    assert sorted(full) == [0, 1, 2]
    for epoch, files in full.items():
        counts = Counter(files)
        for name, r in zip(names, factors):  # every image floor(r) or ceil(r) times
            assert counts[name] in {math.floor(r), math.ceil(r)}
        assert len(files) == len(RepeatFactorSampler(factors, seed=0).draw(epoch))
    assert len({len(f) for f in full.values()}) > 1 or len(full[0]) > len(names)
    assert part == full  # same seed: same sequence, including the epochs after the resume


def test_rare_class_share_goes_up(sampled_runs: dict[str, Any]) -> None:
    trainer, full = sampled_runs["trainer"], sampled_runs["full"]
    dataset = trainer.train_loader.dataset
    by_name = {Path(f).name: lb["cls"].flatten().astype(int) for f, lb in zip(dataset.im_files, dataset.labels)}
    crack = trainer.data["nc"] - 1  # the shapes set's rare class
    loaded = np.concatenate(list(by_name.values()))
    sampled = np.concatenate([by_name[f] for files in full.values() for f in files])
    assert (sampled == crack).mean() > 1.2 * (loaded == crack).mean()


def test_dry_run_shows_epoch_size_and_shares(tmp_path: Path, shapes_yaml: Path) -> None:
    from yolocustom.recipe import load_recipe
    from yolocustom.training import dry_run

    recipe = write_recipe(tmp_path, shapes_yaml, {"repeat_factor_sampling": {"threshold": 0.5}}, epochs=2, batch=16)
    text = dry_run(load_recipe(recipe))
    assert "Repeat-factor sampling" in text and "400 train images ->" in text and "expected per epoch" in text
    assert "share before" in text and "crack" in text


@pytest.mark.parametrize(
    ("block", "train", "message"),
    [
        ({"threshold": 0}, {}, "features.repeat_factor_sampling.threshold: expected a value greater than 0"),
        ({"threshold": 1.5}, {}, "features.repeat_factor_sampling.threshold: expected a value less than or equal"),
        ({"threshold": 0.1}, {"rect": True}, "train.rect: 'train.rect' orders batches by aspect ratio"),
    ],
)
def test_schema_errors(block: dict[str, Any], train: dict[str, Any], message: str) -> None:
    from yolocustom.errors import RecipeError
    from yolocustom.recipe import validate_recipe

    features = {"repeat_factor_sampling": block}
    data = {"model": "yolo26n.yaml", "data": "coco8.yaml", "train": train, "features": features}
    with pytest.raises(RecipeError, match=message):
        validate_recipe(data)


def test_threshold_default_is_the_studied_value() -> None:
    """``repeat_factor_sampling: {}`` takes t = 0.3, the value the fine-tuning study measured (docs/BENCHMARKS.md)."""
    from yolocustom.recipe import validate_recipe

    data = {"model": "yolo26n.yaml", "data": "coco8.yaml", "features": {"repeat_factor_sampling": {}}}
    assert validate_recipe(data).features.repeat_factor_sampling.threshold == 0.3  # type: ignore[union-attr]


def test_two_real_gloo_ranks_shard_the_same_draw(tmp_path: Path) -> None:
    """Under a real 2-process group, each rank's loader (built by the trainer's hook) delivers its own shard."""
    from yolocustom.demo_data import generate_demo_dataset

    data = generate_demo_dataset(tmp_path / "shapes", n_train=40, n_val=8, img_size=32, seed=0, rare_ratio=5)
    recipe = write_recipe(tmp_path, data, {"repeat_factor_sampling": {"threshold": 0.5}}, seed=5)
    ranks = run_ddp(Path(__file__).with_name("ddp_sampler_worker.py"), str(recipe))
    assert [r["rank"] for r in ranks] == [0, 1]
    assert {r["sampler"] for r in ranks} == {"RepeatFactorSampler"}
    assert ranks[0]["factors"] == ranks[1]["factors"] and max(ranks[0]["factors"]) > 1
    assert ranks[0]["files"] == ranks[1]["files"]
    files, factors = ranks[0]["files"], ranks[0]["factors"]
    for epoch in ("0", "1"):
        shards = [r["epochs"][epoch] for r in ranks]
        assert len(shards[0]) == len(shards[1])  # equal steps per rank: no rank waits in an all-reduce
        full = [files[i] for i in RepeatFactorSampler(factors, seed=5).draw(int(epoch))]
        merged = [name for pair in zip(*shards) for name in pair]
        assert merged[: len(full)] == full  # rank k took positions k, k + 2, ... of the one seeded list
    assert ranks[0]["epochs"]["0"] != ranks[0]["epochs"]["1"]
