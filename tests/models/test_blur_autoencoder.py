"""The linear-latent autoencoder: shapes, triplet schemes, linearity losses, synthesis/deblurring algebra,
model files; the two defocus cores (DefocusBlur, LatentBlur) beyond the shared contract."""

import numpy as np
import pytest
import torch
from torch import nn

from medrobust.analysis.dfm import resolve_augment_files
from medrobust.augment import REGISTRY, build, validate
from medrobust.augment.blur import (
    DefocusBlur,
    LatentBlur,
    defocus_blur,
    fit_gaussian_sigma,
    kernel_size,
    psf_kernels,
)
from medrobust.models.blur_autoencoder import (
    PAPER_WIDTHS,
    BlurAutoencoder,
    BlurModel,
    blur_losses,
    deblur,
    explicit_linearity_loss,
    implicit_linearity_loss,
    interpolate_latents,
    latent_blur_from_checkpoint,
    load_blur_model,
    pad_to_multiple,
    plane_triplets,
    save_blur_model,
    synthesize_blur,
    triplet_alphas,
)


# ----------------------------------------------------------------------------------------------- shapes
def test_paper_architecture_latent_is_1024x4x4_at_128():
    m = BlurAutoencoder()
    assert m.widths == PAPER_WIDTHS and m.factor == 32
    with torch.no_grad():
        z, rec = m(torch.rand(1, 1, 128, 128))
    assert z.shape == (1, 1024, 4, 4) and rec.shape == (1, 1, 128, 128)
    assert 0 <= float(rec.min()) and float(rec.max()) <= 1  # sigmoid output
    enc_convs = [mod for mod in m.encoder.modules() if isinstance(mod, nn.Conv2d)]
    assert [c.out_channels for c in enc_convs] == list(PAPER_WIDTHS) and all(c.stride == (2, 2) for c in enc_convs)


@pytest.mark.parametrize("widths,norm", [((4, 8), "batch"), ((4, 8, 16), "group"), ((8,), "none")])
def test_configurable_widths_and_shapes(widths, norm):
    m = BlurAutoencoder(in_channels=3, widths=widths, norm=norm)
    f = 2 ** len(widths)
    z, rec = m(torch.rand(2, 3, 4 * f, 2 * f))
    assert z.shape == (2, widths[-1], 4, 2) and rec.shape == (2, 3, 4 * f, 2 * f)
    with pytest.raises(ValueError, match="divisible"):
        m.encode(torch.rand(1, 3, f + 1, f))
    with pytest.raises(ValueError, match="widths"):
        BlurAutoencoder(widths=())
    with pytest.raises(ValueError, match="norm"):
        BlurAutoencoder(widths=(4,), norm="layer")


def test_padding_keeps_any_image_size():
    m = BlurAutoencoder(widths=(4, 8)).eval()
    x = torch.rand(2, 1, 13, 22)
    xp, hw = pad_to_multiple(x, 4)
    assert xp.shape[-2:] == (16, 24) and hw == (13, 22)
    torch.testing.assert_close(xp[..., :13, :22], x)
    assert synthesize_blur(m, x, x, 0.3).shape == x.shape
    assert pad_to_multiple(torch.rand(1, 1, 2, 2), 8)[0].shape[-2:] == (8, 8)  # too small to reflect: replicate


# ------------------------------------------------------------------------------------------- triplets
def test_triplet_schemes_and_alphas():
    assert plane_triplets(5, "endpoints") == [(0, 4, 1), (0, 4, 2), (0, 4, 3)]
    # the original's training triplets on the even planes z0..z16 (here indices 0..8), all at alpha 0.5
    mid = plane_triplets(9, "midpoints")
    assert set(mid) == {(0, 8, 4), (0, 4, 2), (4, 8, 6), (0, 2, 1), (2, 4, 3), (4, 6, 5), (6, 8, 7)}
    torch.testing.assert_close(triplet_alphas([k / 8 for k in range(9)], mid), torch.full((7,), 0.5))
    assert len(plane_triplets(5, "all")) == 10  # every a < k < b
    torch.testing.assert_close(triplet_alphas([0, 0.1, 1], [(0, 2, 1)]), torch.tensor([0.1]))
    with pytest.raises(ValueError, match="at least 3 planes"):
        plane_triplets(2)
    with pytest.raises(ValueError, match="scheme"):
        plane_triplets(5, "random")
    with pytest.raises(ValueError, match="increase"):
        triplet_alphas([0, 0.5, 0.5], [(1, 2, 0)])


# ------------------------------------------------------------------------------------ linearity losses
def linear_latents(n=3, p=6, shape=(4, 3, 3), positions=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    z0, z1 = torch.randn(n, *shape, generator=g), torch.randn(n, *shape, generator=g)
    t = torch.tensor(positions if positions is not None else np.linspace(0, 1, p), dtype=torch.float32)
    return torch.stack([torch.lerp(z0, z1, tk) for tk in t], dim=1), t.tolist()


@pytest.mark.parametrize("scheme", ["endpoints", "midpoints", "all"])
def test_explicit_loss_zero_for_linear_latents_positive_otherwise(scheme):
    for positions in (None, [0.0, 0.05, 0.3, 0.35, 0.8, 1.0]):  # even and uneven plane spacing
        z, t = linear_latents(positions=positions)
        tri = plane_triplets(6, scheme)
        alphas = triplet_alphas(t, tri)
        assert float(explicit_linearity_loss(z, tri, alphas)) < 1e-10
        bent = z.clone()
        bent[:, 2] += 0.1  # one intermediate latent off the line
        assert float(explicit_linearity_loss(bent, tri, alphas)) > 1e-4
        if positions is not None:  # linear in t, but read with the wrong (even) positions
            wrong = triplet_alphas(np.linspace(0, 1, 6), tri)
            assert float(explicit_linearity_loss(z, tri, wrong)) > 1e-4


def test_implicit_loss_zero_when_decoded_interpolations_match():
    z, t = linear_latents(shape=(1, 5, 5))
    tri = plane_triplets(6, "endpoints")
    alphas = triplet_alphas(t, tri)
    decoded = interpolate_latents(z, tri, alphas)  # identity decoder on pixel-linear planes
    assert float(implicit_linearity_loss(decoded, z, tri)) < 1e-12
    assert float(implicit_linearity_loss(decoded + 0.05, z, tri)) == pytest.approx(0.0025, rel=1e-4)


class IdentityAE(nn.Module):
    """latent = image, decoder = identity (a stand-in with the BlurAutoencoder interface)."""

    in_channels, factor = 1, 1

    def encode(self, x):
        return x

    def decode(self, z):
        return z

    def forward(self, x, interp=None):
        if interp is None:
            return x, x
        ia, ib, a = interp
        return x, x, torch.lerp(x[ia], x[ib], a.view(-1, 1, 1, 1))


def test_blur_losses_all_zero_for_an_identity_model_on_pixel_linear_stacks():
    z, t = linear_latents(n=2, p=5, shape=(1, 8, 8))
    tri = plane_triplets(5, "midpoints")
    total, logs = blur_losses(IdentityAE(), z, tri, triplet_alphas(t, tri))
    assert float(total) < 1e-12 and set(logs) == {"loss_reconstruction", "loss_explicit", "loss_implicit"}
    blurred = z.clone()
    blurred[:, 2] = blurred[:, 2] ** 2  # non-linear middle plane
    total, logs = blur_losses(IdentityAE(), blurred, tri, triplet_alphas(t, tri))
    assert logs["loss_explicit"] > 0 and logs["loss_implicit"] > 0 and logs["loss_reconstruction"] == 0


def test_blur_losses_backprop_through_a_real_model():
    m = BlurAutoencoder(widths=(4, 8))
    planes = torch.rand(2, 4, 1, 16, 16)
    tri = plane_triplets(4)
    loss, _ = blur_losses(m, planes, tri, triplet_alphas([0, 1 / 3, 2 / 3, 1], tri), explicit=0.5)
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_synthesis_and_deblurring_algebra():
    """t interpolates/extrapolates; deblurring with alpha = t_k inverts synthesis (identity model)."""
    z, t = linear_latents(n=2, p=5, shape=(1, 8, 8))
    m = IdentityAE()
    sharp, blurred = z[:, 0], z[:, -1]
    for k in range(5):
        torch.testing.assert_close(synthesize_blur(m, sharp, blurred, t[k]), z[:, k])
    torch.testing.assert_close(synthesize_blur(m, sharp, blurred, torch.tensor([0.0, 1.0])), torch.stack([sharp[0], blurred[1]]))
    for k in range(1, 4):  # E(sharp) = (E(z_k) - alpha E(blurred)) / (1 - alpha)
        torch.testing.assert_close(deblur(m, z[:, k], blurred, t[k]), sharp, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="strength"):
        deblur(m, sharp, blurred, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        synthesize_blur(m, sharp, blurred[:, :, :4], 0.5)


# ---------------------------------------------------------------------------------------- model files
def tiny_bundle_file(tmp_path, name="model.pt"):
    torch.manual_seed(0)
    m = BlurAutoencoder(widths=(4, 8)).eval()
    path = save_blur_model(tmp_path / name, m, positions=[0, 0.5, 1], reference_sigma=2.0,
                           intensity={"mode": "stack", "lo": 0.0, "hi": 1.0}, config={"model": {"widths": [4, 8]}})
    return m, path


def test_model_file_roundtrip_with_weights_only(tmp_path):
    m, path = tiny_bundle_file(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["hparams"] == {"in_channels": 1, "widths": [4, 8], "norm": "batch", "decoder": "transpose"}
    b = load_blur_model(path)
    assert isinstance(b, BlurModel) and b.positions == [0, 0.5, 1] and b.reference_sigma == 2.0
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(b.model(x)[1], m(x)[1])
    assert load_blur_model(tmp_path).source.endswith("model.pt")  # a run directory


def test_loop_checkpoint_is_rebuilt_from_config_and_meta(tmp_path):
    import json

    import yaml

    torch.manual_seed(1)
    m = BlurAutoencoder(widths=(4, 8), norm="group").eval()
    torch.save({"model": m.state_dict(), "step": 3}, tmp_path / "best.pt")
    with pytest.raises(ValueError, match="config.yaml and blur_meta.json"):
        load_blur_model(tmp_path / "best.pt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": {"in_channels": 1, "widths": [4, 8], "norm": "group"}}))
    (tmp_path / "blur_meta.json").write_text(json.dumps({"positions": [0, 1], "reference_sigma": 1.0,
                                                         "intensity": {"mode": "dtype"}}))
    b = load_blur_model(tmp_path)  # no model.pt: falls back to best.pt
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(b.model(x)[1], m(x)[1])


def test_model_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_blur_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.pt.*not a readable"):
        load_blur_model(tmp_path / "junk.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a blur autoencoder"):
        load_blur_model(tmp_path / "other.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no model.pt"):
        load_blur_model(tmp_path / "empty")
    _, path = tiny_bundle_file(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["hparams"]["widths"] = [4, 16]
    torch.save(raw, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not match"):
        load_blur_model(tmp_path / "mismatch.pt")


# ----------------------------------------------------------------------------- decoder: no checkerboard
def _flat_output_peak(decoder: str, seed: int) -> float:
    """Nyquist peak (dB) of a freshly initialised model's output for a flat grey input (interior only)."""
    from medrobust.evaluate.metrics import nyquist_peak_db

    torch.manual_seed(seed)
    m = BlurAutoencoder(widths=(16, 32), norm="none", decoder=decoder).eval()
    with torch.no_grad():
        y = m.decode(m.encode(torch.full((1, 1, 64, 64), 0.5)))[0, 0]
    return nyquist_peak_db(y[8:-8, 8:-8] - 0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_resize_decoder_paints_no_checkerboard_on_a_flat_input(seed):
    # the test can fail: the original's transposed convolutions put a period-2 peak on a flat input
    assert _flat_output_peak("transpose", seed) > 20
    assert _flat_output_peak("resize", seed) < 6


def test_nyquist_peak_and_laplacian_variance_metrics():
    from scipy import ndimage

    from medrobust.evaluate.metrics import laplacian_variance, nyquist_peak_db

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(64, 64, generator=g)
    board = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 1.0
    assert abs(nyquist_peak_db(noise)) < 8 and nyquist_peak_db(noise + 0.5 * board) > 15
    smooth = torch.from_numpy(ndimage.gaussian_filter(noise.numpy(), 3))
    assert abs(nyquist_peak_db(smooth)) < 3 and nyquist_peak_db(smooth + 0.01 * board) > 30
    ref = ndimage.laplace(noise.numpy().astype(np.float64))[1:-1, 1:-1].var()
    assert laplacian_variance(noise) == pytest.approx(ref, rel=1e-9)
    assert laplacian_variance(smooth) < 0.01 * laplacian_variance(noise)


def test_old_model_files_load_as_transpose_and_unknown_decoders_fail_in_one_line(tmp_path):
    m, path = tiny_bundle_file(tmp_path)
    raw = torch.load(path, weights_only=True)
    del raw["hparams"]["decoder"]  # a file written before the decoder option
    torch.save(raw, tmp_path / "old.pt")
    b = load_blur_model(tmp_path / "old.pt")
    assert b.model.decoder_kind == "transpose"
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(b.model(x)[1], m(x)[1])
    raw["hparams"]["decoder"] = "deconv9"
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=r"future\.pt: unsupported model hyperparameters") as err:
        load_blur_model(tmp_path / "future.pt")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("decoder", ["resize", "subpixel"])
def test_new_decoders_roundtrip_and_detail_is_exact_at_the_end_points(tmp_path, decoder):
    torch.manual_seed(0)
    m = BlurAutoencoder(widths=(4, 8), norm="none", decoder=decoder).eval()
    path = save_blur_model(tmp_path / "m.pt", m, positions=[0, 0.5, 1], reference_sigma=1.0,
                           intensity={"mode": "stack", "lo": 0.0, "hi": 1.0})
    b = load_blur_model(path)
    assert b.model.decoder_kind == decoder
    x, ref = torch.rand(2, 1, 13, 18), torch.rand(2, 1, 13, 18)
    with torch.no_grad():
        torch.testing.assert_close(b.model(torch.rand(1, 1, 8, 8))[1].shape, torch.Size([1, 1, 8, 8]))
        torch.testing.assert_close(synthesize_blur(b.model, x, ref, 0.0, detail=True), x, atol=1e-6, rtol=0)
        torch.testing.assert_close(synthesize_blur(b.model, x, ref, 1.0, detail=True), ref, atol=1e-6, rtol=0)
        mid = synthesize_blur(b.model, x, ref, 0.5, detail=True)
        plain = synthesize_blur(b.model, x, ref, 0.5)
        recon = [synthesize_blur(b.model, v, v, 0.0) for v in (x, ref)]
        torch.testing.assert_close(mid, plain + 0.5 * (x - recon[0]) + 0.5 * (ref - recon[1]), atol=1e-5, rtol=0)
        # deblurring with detail inverts the pixel-space mixing of the residuals
        d = deblur(b.model, x, ref, 0.5, detail=True)
        assert d.shape == x.shape
    core = latent_blur_from_checkpoint(path, levels=0.0, detail=True)
    y = torch.rand(3, 2, 16, 16)
    torch.testing.assert_close(core(y, torch.Generator().manual_seed(0)), y, atol=1e-6, rtol=0)


def test_fit_psf_radius_recovers_a_disk():
    from medrobust.augment.blur import fit_psf_radius

    x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    assert fit_psf_radius(x, defocus_blur(x, 2.6, "disk"), "disk", max_radius=8) == pytest.approx(2.6, abs=0.05)
    with pytest.raises(ValueError, match="kind"):
        fit_psf_radius(x, x, "box")


# -------------------------------------------------------------------------------------- DefocusBlur
def test_psf_kernels_normalised_and_identity_at_zero():
    k = psf_kernels(torch.tensor([0.0, 1.5, 3.0]), "disk", kernel_size(3.0, "disk"))
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(3))
    assert float(k[0].max()) == 1.0 and (k >= 0).all()
    g = psf_kernels(torch.tensor([0.0, 2.0]), "gaussian", kernel_size(2.0, "gaussian"))
    assert float(g[0].max()) == 1.0
    mixed = psf_kernels(torch.tensor([2.0, 2.0]), torch.tensor([0, 1]), 13)
    torch.testing.assert_close(mixed[0], psf_kernels(torch.tensor([2.0]), "disk", 13)[0])
    torch.testing.assert_close(mixed[1], psf_kernels(torch.tensor([2.0]), "gaussian", 13)[0])


def test_defocus_blur_conv_equals_fft_and_keeps_constants():
    x = torch.rand(3, 2, 40, 33, generator=torch.Generator().manual_seed(0))
    for kind in ("disk", "gaussian"):
        r = torch.tensor([0.0, 2.5, 9.0])
        torch.testing.assert_close(defocus_blur(x, r, kind, method="conv"), defocus_blur(x, r, kind, method="fft"),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(defocus_blur(x, r, kind)[0], x[0])
    const = torch.full((1, 1, 20, 20), 0.3)
    torch.testing.assert_close(defocus_blur(const, 6.0, "disk"), const)  # replicate borders: no dark edges
    with pytest.raises(ValueError, match="radius"):
        defocus_blur(x, -1.0)


def test_fit_gaussian_sigma_recovers_the_blur():
    x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    y = defocus_blur(x, 2.3, "gaussian")
    assert fit_gaussian_sigma(x, y, max_sigma=8) == pytest.approx(2.3, abs=0.05)
    assert fit_gaussian_sigma([x, x[:1, :, :20]], [y, defocus_blur(x[:1, :, :20], 2.3, "gaussian")],
                              max_sigma=8) == pytest.approx(2.3, abs=0.05)


def test_defocus_core_per_sample_radius_and_config():
    core = build({"name": "defocus_psf", "radius": [1.0, 6.0], "kind": "mixed"})
    assert isinstance(core, DefocusBlur) and core.size == max(kernel_size(6.0, "disk"), kernel_size(6.0, "gaussian"))
    x = torch.rand(16, 1, 32, 32)
    params = core.sample_params(x, torch.Generator().manual_seed(0))
    assert params["radius"].shape == (16,) and 1.0 <= float(params["radius"].min()) <= float(params["radius"].max()) <= 6.0
    assert set(params["kind"].tolist()) == {0, 1}
    y = core.apply(x, params)
    i = int(params["radius"].argmax())
    assert float(y[i].std()) < float(x[i].std()) * 0.6  # strong blur smooths noise
    with pytest.raises(ValueError, match="kind"):
        DefocusBlur(kind="box")
    with pytest.raises(ValueError, match="radius"):
        DefocusBlur(radius=(-1.0, 2.0))
    with pytest.raises(ValueError, match="shape"):
        core(torch.rand(2, 1, 4, 8, 8))  # 2D only


# --------------------------------------------------------------------------------------- LatentBlur
def test_latent_blur_registry_choice_and_errors(tmp_path):
    assert REGISTRY["latent_blur"] is LatentBlur and REGISTRY["defocus_psf"] is DefocusBlur
    with pytest.raises(ValueError, match="model: required"):
        LatentBlur(None)
    with pytest.raises(ValueError, match="reference_sigma"):
        LatentBlur(BlurAutoencoder(widths=(4,)))
    # augment reads no files: a path points at the loader in models
    with pytest.raises(TypeError, match="latent_blur_from_checkpoint"):
        LatentBlur(str(tmp_path / "model.pt"), reference_sigma=1.0)
    with pytest.raises(TypeError, match="encode"):
        LatentBlur(nn.Conv2d(1, 1, 3), reference_sigma=1.0)


def test_latent_blur_from_file_levels_and_channels(tmp_path):
    m, path = tiny_bundle_file(tmp_path)
    core = latent_blur_from_checkpoint(path, levels=(0.0, 1.5))
    assert isinstance(core, LatentBlur)
    assert core.reference_sigma == 2.0 and not any(p.requires_grad for p in core.parameters())
    # a config entry naming the file: the task layer loads it before build (augment reads no files)
    validate({"name": "latent_blur", "model": str(path), "levels": [0.0, 1.5]})
    built = build(resolve_augment_files({"name": "latent_blur", "model": str(path), "levels": [0.0, 1.5]}))
    assert isinstance(built, LatentBlur) and built.reference_sigma == 2.0
    core.train()
    assert not core.model.training  # frozen in eval mode
    x = torch.rand(4, 3, 16, 16)
    params = core.sample_params(x, torch.Generator().manual_seed(0))
    assert params["level"].shape == (4,) and len(set(params["level"].tolist())) == 4
    y = core.apply(x, params)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    # level 0 is the autoencoder's reconstruction of each channel
    fixed = latent_blur_from_checkpoint(load_blur_model(path), levels=0.0)
    y0 = fixed(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        rec = m(x.reshape(12, 1, 16, 16))[1].reshape(4, 3, 16, 16)
    torch.testing.assert_close(y0, rec, atol=1e-5, rtol=1e-5)
