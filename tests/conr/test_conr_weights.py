"""Backbones keep torchvision's parameter names; conr.weights finds, checks and strictly loads files.

The torchvision layouts are written out here independently of conr.nn.backbones (from torchvision's
source conventions), so a renamed parameter in the project shows up as a failure."""
from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

from conr.errors import WeightsError
from conr.nn.backbones import VGG19, resnet18, resnet34, resnet50
from conr.weights import KNOWN, RANDOM, load_weights, resolve


def torchvision_resnet_layout(kind: str, layers, with_fc: bool = True) -> dict[str, tuple]:
    """Key -> shape of torchvision's resnet{18,34,50} state_dict."""
    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    e = 4 if kind == "bottleneck" else 1
    sd = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    cin = 64
    for li, (width, count) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for b in range(count):
            p = f"layer{li}.{b}"
            if kind == "bottleneck":
                sd |= {f"{p}.conv1.weight": (width, cin, 1, 1), **bn(f"{p}.bn1", width),
                       f"{p}.conv2.weight": (width, width, 3, 3), **bn(f"{p}.bn2", width),
                       f"{p}.conv3.weight": (width * e, width, 1, 1), **bn(f"{p}.bn3", width * e)}
            else:
                sd |= {f"{p}.conv1.weight": (width, cin, 3, 3), **bn(f"{p}.bn1", width),
                       f"{p}.conv2.weight": (width, width, 3, 3), **bn(f"{p}.bn2", width)}
            if b == 0 and (li > 1 or cin != width * e):
                sd |= {f"{p}.downsample.0.weight": (width * e, cin, 1, 1), **bn(f"{p}.downsample.1", width * e)}
            cin = width * e
    if with_fc:
        sd |= {"fc.weight": (1000, 512 * e), "fc.bias": (1000,)}
    return sd


def torchvision_vgg19_layout(with_classifier: bool = True) -> dict[str, tuple]:
    convs = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
             14: (256, 256), 16: (256, 256), 19: (512, 256), 21: (512, 512), 23: (512, 512), 25: (512, 512),
             28: (512, 512), 30: (512, 512), 32: (512, 512), 34: (512, 512)}
    sd = {}
    for i, (cout, cin) in convs.items():
        sd |= {f"features.{i}.weight": (cout, cin, 3, 3), f"features.{i}.bias": (cout,)}
    if with_classifier:
        for i, (cout, cin) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
            sd |= {f"classifier.{i}.weight": (cout, cin), f"classifier.{i}.bias": (cout,)}
    return sd


BN_STATS = (".running_mean", ".running_var", ".num_batches_tracked")


def parameters_of(layout: dict[str, tuple]) -> dict[str, tuple]:
    """The layout without BatchNorm's running statistics: what the InstanceNorm encoders hold."""
    return {k: s for k, s in layout.items() if not k.endswith(BN_STATS)}


def fake_file(tmp_path, layout: dict[str, tuple], name: str = "w.pth", seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    sd = {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
          for k, s in layout.items()}
    path = tmp_path / name
    torch.save(sd, path)
    return path, sd


def shapes(build, **kw) -> dict[str, tuple]:
    with torch.device("meta"):  # names and shapes only: VGG19's classifier alone is 120M parameters
        return {k: tuple(v.shape) for k, v in build(**kw).state_dict().items()}


CASES = {
    "resnet18": (resnet18, ("basic", (2, 2, 2, 2))),
    "resnet34": (resnet34, ("basic", (3, 4, 6, 3))),
    "resnet50": (resnet50, ("bottleneck", (3, 4, 6, 3))),
}


@pytest.mark.parametrize("build,spec", CASES.values(), ids=CASES.keys())
def test_resnet_names_and_shapes_match_torchvision(build, spec):
    # the encoders' norm layers are InstanceNorm: torchvision's BatchNorm weight/bias, no running statistics
    assert shapes(build, num_classes=1000) == parameters_of(torchvision_resnet_layout(*spec))
    assert shapes(build) == parameters_of(torchvision_resnet_layout(*spec, with_fc=False))


def test_well_known_torchvision_keys():
    r50 = shapes(resnet50, num_classes=1000)
    assert len(r50) == 320 - 3 * 53  # 53 norm layers without their 3 BatchNorm buffers
    assert r50["layer4.2.bn3.weight"] == (2048,) and "layer4.2.bn3.running_var" not in r50
    assert r50["fc.weight"] == (1000, 2048)
    assert r50["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert r50["layer3.5.conv2.weight"] == (256, 256, 3, 3)
    vgg = shapes(VGG19, num_classes=1000)
    assert len(vgg) == 38 and vgg["features.34.weight"] == (512, 512, 3, 3)
    assert vgg["classifier.0.weight"] == (4096, 25088)
    assert shapes(VGG19) == torchvision_vgg19_layout(with_classifier=False)
    assert vgg == torchvision_vgg19_layout()


def test_torchvision_resnet50_file_loads_strictly(tmp_path):
    path, sd = fake_file(tmp_path, torchvision_resnet_layout("bottleneck", (3, 4, 6, 3)))
    full = resnet50(num_classes=1000)
    assert load_weights(full, path, backbone=True) == path
    torch.testing.assert_close(full.layer4[2].bn3.weight, sd["layer4.2.bn3.weight"])
    torch.testing.assert_close(full.layer1[0].downsample[1].bias, sd["layer1.0.downsample.1.bias"])
    assert not any(k.endswith(BN_STATS) for k in full.state_dict())
    encoder = resnet50(norm="imagenet")  # no fc: the classifier head of the file is dropped, nothing else
    load_weights(encoder, path, backbone=True)
    torch.testing.assert_close(encoder.conv1.weight, sd["conv1.weight"])
    assert len(encoder(torch.rand(1, 3, 64, 64))) == 5


def test_torchvision_vgg19_file_loads_strictly(tmp_path):
    path, sd = fake_file(tmp_path, torchvision_vgg19_layout(with_classifier=False))
    vgg = VGG19()
    load_weights(vgg, path, backbone=True)
    torch.testing.assert_close(vgg.features[34].weight, sd["features.34.weight"])
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_danbooru_fastai_layout_maps_onto_resnet50(tmp_path):
    # RF5/danbooru-pretrained: Sequential(body = torchvision resnet50 children[:-2], head)
    to_fastai = {"conv1": "0.0", "bn1": "0.1", "layer1": "0.4", "layer2": "0.5", "layer3": "0.6", "layer4": "0.7"}
    body = {to_fastai[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: s
            for k, s in torchvision_resnet_layout("bottleneck", (3, 4, 6, 3), with_fc=False).items()}
    head = {"1.2.weight": (4096,), "1.4.weight": (512, 4096), "1.8.weight": (6000, 512), "1.8.bias": (6000,)}
    assert "0.4.0.conv1.weight" in body and "0.7.2.bn3.running_var" in body
    path, sd = fake_file(tmp_path, body | head)
    encoder = resnet50(norm="danbooru")
    load_weights(encoder, path, backbone=True)
    torch.testing.assert_close(encoder.layer4[2].bn3.weight, sd["0.7.2.bn3.weight"])


def test_batchnorm_statistics_are_dropped_and_nothing_else(tmp_path):
    from conr.weights import adapt_backbone_state_dict

    layout = torchvision_resnet_layout("basic", (2, 2, 2, 2))
    _, sd = fake_file(tmp_path, layout)
    adapted = adapt_backbone_state_dict(resnet18(num_classes=1000), sd)
    assert set(adapted) == set(parameters_of(layout))            # 3 buffers x 20 norm layers dropped
    assert len(sd) - len(adapted) == 3 * 20
    # a BatchNorm weight of the wrong size is still a shape mismatch, an unknown parameter still unexpected
    path, _ = fake_file(tmp_path, layout | {"bn1.weight": (32,), "bn9.weight": (64,)}, name="bad.pth")
    with pytest.raises(WeightsError) as e:
        load_weights(resnet18(num_classes=1000), path, backbone=True)
    assert "bn1.weight: file (32,) vs model (64,)" in str(e.value) and "unexpected keys (1): bn9.weight" in str(e.value)
    # without the backbone adapter a torchvision file's statistics are unexpected keys, named
    path, _ = fake_file(tmp_path, layout, name="tv.pth")
    with pytest.raises(WeightsError, match=r"unexpected keys \(60\): bn1\.running_mean"):
        load_weights(resnet18(num_classes=1000), path)


def test_wrong_architecture_names_file_and_keys(tmp_path):
    path, _ = fake_file(tmp_path, torchvision_resnet_layout("basic", (2, 2, 2, 2)), name="resnet18.pth")
    with pytest.raises(WeightsError) as e:
        load_weights(resnet50(num_classes=1000), path, backbone=True)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "does not fit ResNet" in msg
    assert "missing keys" in msg and "layer1.0.conv3.weight" in msg
    assert "shape mismatches (" in msg and "layer1.0.conv1.weight: file (64, 64, 3, 3) vs model (64, 64, 1, 1)" in msg


def test_strict_load_reports_unexpected_keys(tmp_path):
    layout = torchvision_resnet_layout("basic", (2, 2, 2, 2)) | {"extra.weight": (3,)}
    path, _ = fake_file(tmp_path, layout)
    with pytest.raises(WeightsError, match=r"unexpected keys \(1\): extra\.weight"):
        load_weights(resnet18(num_classes=1000), path, backbone=True)


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", b"PK\x03\x04" + b"\0" * 64])
def test_corrupt_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as e:
        load_weights(resnet18(), path)
    assert str(e.value).startswith(str(path)) and "cannot be read as a torch weights file" in str(e.value)


def test_truncated_file_is_one_clear_error(tmp_path):
    path, _ = fake_file(tmp_path, torchvision_resnet_layout("basic", (2, 2, 2, 2)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cannot be read"):
        load_weights(resnet18(num_classes=1000), path, backbone=True)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": pickle.dumps}, path)  # a callable, not a tensor
    with pytest.raises(WeightsError, match="cannot be read"):
        load_weights(resnet18(), path)


def test_checkpoint_wrappers_and_ddp_prefix(tmp_path):
    model = resnet18()
    path = tmp_path / "ck.pt"
    torch.save({"step": torch.tensor(3), "model": {f"module.{k}": v + 1 for k, v in model.state_dict().items()}}, path)
    other = resnet18()
    load_weights(other, path)
    torch.testing.assert_close(other.conv1.weight, model.conv1.weight + 1)


def test_sha256_checked(tmp_path):
    path, _ = fake_file(tmp_path, torchvision_resnet_layout("basic", (2, 2, 2, 2)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    load_weights(resnet18(num_classes=1000), path, sha256=digest, backbone=True)
    load_weights(resnet18(num_classes=1000), path, sha256=digest[:8], backbone=True)
    with pytest.raises(WeightsError, match=f"sha256 {digest} does not match the expected 00000000"):
        load_weights(resnet18(num_classes=1000), path, sha256="00000000", backbone=True)
    with pytest.raises(WeightsError, match="not a hex digest"):
        load_weights(resnet18(num_classes=1000), path, sha256="xyz", backbone=True)


def test_search_order_env_dir_then_torch_hub_cache(tmp_path, monkeypatch):
    env_dir, torch_home = tmp_path / "weights", tmp_path / "torch"
    hub = torch_home / "hub" / "checkpoints"
    env_dir.mkdir()
    hub.mkdir(parents=True)
    monkeypatch.setenv("CONR_WEIGHTS_DIR", str(env_dir))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    layout = torchvision_resnet_layout("basic", (2, 2, 2, 2))
    fake_file(hub, layout, name="r18.pth")
    assert resolve("r18.pth")[0] == hub / "r18.pth"
    fake_file(env_dir, layout, name="r18.pth", seed=1)
    assert resolve("r18.pth")[0] == env_dir / "r18.pth"
    with pytest.raises(WeightsError, match=r"not found in .*weights, .*checkpoints.*nothing is downloaded"):
        resolve("absent.pth")
    with pytest.raises(WeightsError, match="no such file"):
        resolve(tmp_path / "missing" / "r18.pth")


def test_alias_resolves_to_torchvision_name_and_checks_its_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("CONR_WEIGHTS_DIR", str(tmp_path))
    filename, prefix = KNOWN["resnet18"]
    path, _ = fake_file(tmp_path, torchvision_resnet_layout("basic", (2, 2, 2, 2)), name=filename)
    assert resolve("resnet18") == (path, prefix)
    with pytest.raises(WeightsError, match=f"does not match the expected {prefix}"):  # random bytes, not the real file
        load_weights(resnet18(num_classes=1000), "resnet18")


def test_random_init_only_when_asked():
    model = resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert load_weights(model, RANDOM) is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(WeightsError, match="no weights given for ResNet.*'random'"):
        load_weights(model, None)


def test_resnet_classifier_head_is_torchvisions():
    model = resnet18(num_classes=10).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        pooled = model(x)[-1].mean((2, 3))
        torch.testing.assert_close(model.classify(x), pooled @ model.fc.weight.T + model.fc.bias)
