"""A tiny end-to-end training run: it finishes, saves a checkpoint, and reloads identically."""

import json
import shutil

import numpy as np
import pytest

from ml.checkpoint import CheckpointError, load_checkpoint
from ml.inference import Predictor
from ml.training import TrainConfig, TrainingError, stratified_split, train
from tests.ml.shapes import SHAPES


def _tiny_config(samples, out, **overrides):
    settings = dict(
        samples=samples,
        class_names=list(SHAPES),
        output_dir=out,
        input_size=32,
        val_fraction=0.34,
        trainable_blocks=(1,),
        epochs=(2,),
        learning_rates=(3e-3,),
        batch_size=8,
        time_budget_s=60,
        min_support=2,
        seed=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(shape_samples, tmp_path_factory):
    """One tiny run shared by the tests below; one of its images is corrupt."""
    out = tmp_path_factory.mktemp("run") / "model"
    calls = []
    samples = [*shape_samples, (b"\x89PNG broken", 0)]
    result = train(
        _tiny_config(
            samples,
            out,
            trainable_blocks=(2, 1),  # two depths: the second cache is derived from the first
            progress=calls.append,
        )
    )
    return result, out, calls


def test_training_returns_the_metrics_a_user_looks_at(trained):
    result, _, _ = trained
    for key in ("accuracy", "macro_f1", "ece", "coverage_at_target", "per_class"):
        assert key in result.metrics
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert set(result.metrics["per_class"]) == set(SHAPES)
    assert len(result.thresholds) == 3
    assert result.temperature > 0


def test_a_corrupt_training_image_is_skipped_not_fatal(trained):
    result, _, _ = trained
    assert len(result.skipped_samples) == 1
    assert result.config["data"]["skipped_items"] == 1


def test_checkpoint_is_complete_with_its_resolved_config(trained):
    result, out, _ = trained
    # No temporary files left behind by the atomic writes; the shift reference sits beside.
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.pt", "shift.npz"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0"
    assert config["class_names"] == list(SHAPES)
    assert config["preprocess"]["input_size"] == 32
    assert config["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert config["temperature"] == pytest.approx(result.temperature)
    assert config["class_calibration"] == result.class_calibration.to_list()
    assert config["trainable_blocks"] in (1, 2)
    assert [t["trainable_blocks"] for t in config["trials"]] == [2, 1]
    assert config["thresholds"]["per_class"] == result.thresholds
    assert "accuracy" in config["metrics"]


def test_checkpoint_reloads_to_the_same_predictions(trained, shape_samples):
    result, out, _ = trained
    images = [s for s, _ in shape_samples[:9]]
    reloaded = Predictor.load(out)
    in_memory = Predictor(
        result.model,
        reloaded.preprocess,
        list(SHAPES),
        temperature=result.temperature,
        class_calibration=result.class_calibration,
    )
    np.testing.assert_allclose(
        reloaded.predict(images).probs, in_memory.predict(images).probs, atol=1e-6
    )


def test_progress_goes_through_the_phases_up_to_100_percent(trained):
    _, _, calls = trained
    phases = [c.phase for c in calls]
    # preparing → training (trial i of n, epoch j of m) → calibrating → done, in that order.
    order = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert order == ["preparing", "training", "calibrating", "done"]
    last = calls[-1]
    assert last.percent == pytest.approx(100.0) and last.eta_s == 0.0
    assert last.message.startswith("saved ")
    training = [(c.trial, c.trials, c.epoch, c.epochs) for c in calls if c.phase == "training"]
    assert (2, 2, 2, 2) in training  # trial 2 of 2, epoch 2 of 2
    assert all(0 <= c.percent <= 100 for c in calls)
    percents = [c.percent for c in calls]
    assert percents == sorted(percents)  # the bar never goes back
    preparing = [c for c in calls if c.phase == "preparing"]
    assert preparing[-1].done == preparing[-1].total > 0


def test_the_time_left_counts_the_trials_still_to_come(trained):
    """The old estimate counted only the current trial's epochs: at the end of trial 1 it said
    nothing was left, with a whole trial still to run."""
    _, _, calls = trained
    end_of_first = [c for c in calls if c.phase == "training" and (c.trial, c.epoch) == (1, 2)]
    assert end_of_first and end_of_first[0].eta_s > 0
    # While preparing nothing about the search is measured yet: no estimate, only the bound
    # the time budget gives.
    preparing = [c for c in calls if c.phase == "preparing"]
    assert all(c.eta_s is None and c.eta_max_s is not None for c in preparing)
    assert all(c.eta_s is not None for c in calls if c.phase != "preparing")


def test_tampered_weights_are_detected(trained, tmp_path):
    _, out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "model.pt").write_bytes(b"half written")
    with pytest.raises(CheckpointError):
        load_checkpoint(copy)


@pytest.mark.slow
def test_training_is_deterministic_with_a_seed(shape_samples, tmp_path):
    a = train(_tiny_config(shape_samples, tmp_path / "a"))
    b = train(_tiny_config(shape_samples, tmp_path / "b"))
    assert a.metrics["val_nll"] == pytest.approx(b.metrics["val_nll"], rel=1e-6)


def test_an_ensemble_member_shares_the_split_and_differs_in_its_weights(shape_samples, tmp_path):
    a = train(_tiny_config(shape_samples, tmp_path / "a"))
    same = train(_tiny_config(shape_samples, tmp_path / "same", init_seed=1))
    member = train(_tiny_config(shape_samples, tmp_path / "member", init_seed=2))
    # init_seed equal to seed is the plain run; another one changes the weights, not the split.
    assert same.metrics["val_nll"] == pytest.approx(a.metrics["val_nll"], rel=1e-6)
    assert np.array_equal(member.val_labels, a.val_labels)
    assert member.config["seed"] == 1 and member.config["init_seed"] == 2
    assert not np.allclose(member.val_logits, a.val_logits)


def test_a_tight_time_budget_shortens_the_schedule_and_skips_later_trials(shape_samples, tmp_path):
    result = train(
        _tiny_config(
            shape_samples,
            tmp_path / "m",
            epochs=(3,),
            learning_rates=(1e-3, 2e-3),
            time_budget_s=0.001,
        )
    )
    first, second = result.trials
    assert first["epochs_run"] == 1 and first["epochs_compressed_to"] == 1
    assert second["status"] == "skipped: time budget"
    assert (tmp_path / "m" / "model.pt").exists()  # still a usable checkpoint


def test_labels_must_be_class_indices(shape_samples, tmp_path):
    with pytest.raises(TrainingError):
        train(_tiny_config([(s, 5) for s, _ in shape_samples], tmp_path / "m"))


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.repeat([0, 1, 2], [50, 10, 2])
    train_idx, val_idx = stratified_split(labels, 0.2, seed=0)
    assert set(labels[train_idx]) == {0, 1, 2} and set(labels[val_idx]) == {0, 1, 2}
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert len(train_idx) + len(val_idx) == len(labels)


def predictor_array(predictor, source):
    """The decoded, resized image the predictor sees (3×S×S, before normalisation)."""
    from ml.preprocess import to_uint8_array

    return to_uint8_array(source, predictor.preprocess)


def test_the_calibration_is_fitted_on_the_validation_rows_the_caller_chose(shape_samples, tmp_path):
    """A held-out set that mixes hard queue images with random ones is calibrated on the random
    ones: the temperature is the one those rows alone give, a corrupt row drops out of the
    mask with its image, and a mask of the wrong length is refused."""
    from ml.calibration import fit_temperature

    train_part, val_part = shape_samples[:24], [*shape_samples[24:], (b"\x89PNG broken", 1)]
    mask = [i % 2 == 0 for i in range(len(val_part))]  # the corrupt last row is in the mask
    result = train(
        _tiny_config(train_part, tmp_path / "m", validation_samples=val_part, calibration_mask=mask)
    )
    kept = np.array(mask[:-1])  # the corrupt image left the validation rows
    assert result.metrics["calibration_items"] == int(kept.sum()) < len(result.val_labels)
    assert result.temperature == pytest.approx(
        fit_temperature(result.val_logits[kept], result.val_labels[kept]), rel=1e-6
    )
    with pytest.raises(TrainingError, match="calibration_mask"):
        train(
            _tiny_config(
                train_part, tmp_path / "x", validation_samples=val_part, calibration_mask=[True]
            )
        )
