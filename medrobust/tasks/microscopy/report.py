"""The microscopy report: synthesis / deblurring tables, per-plane tables and the synthesis figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...evaluate.report import (
    Section,
    figures_section,
    format_table,
    new_figure,
    report_files,
    save_figure,
    show_image,
    sources_section,
    write_report,
)
from ...models.blur_autoencoder import (
    BlurModel,
    synthesize_blur,
)

__all__ = ["blur_table", "blur_sections", "write_blur_report"]

TITLE = "Defocus blur synthesis and deblurring (linear-latent autoencoder)"



def _fmt(v: Any, spec: str) -> str | None:
    return None if v is None else format(v, spec)


DETAIL_NOISE_FREE = "detail kept (vs noise-free)"


def _summary_table(section: Mapping[str, Any]) -> str:
    rows = [{"Method": m, "PSNR (dB)": f"{v['psnr']:.2f}", "SSIM": f"{v['ssim']:.4f}",
             "detail kept": _fmt(v.get("detail"), ".2f"), DETAIL_NOISE_FREE: _fmt(v.get("detail_noise_free"), ".2f"),
             "Nyquist peak (dB)": _fmt(v.get("nyquist_db"), ".1f"), "images": v["n"]} for m, v in section.items()]
    return format_table(rows, ["Method", "PSNR (dB)", "SSIM", "detail kept", DETAIL_NOISE_FREE, "Nyquist peak (dB)",
                               "images"])


def blur_table(results: Mapping[str, Any]) -> str:
    """The synthesis and deblurring tables (markdown) of :func:`evaluate_blur` results: all test stacks,
    then each group (held-out real images, synthetic test fields) when the results have them.

    Columns: PSNR, SSIM, detail kept (Laplacian-variance ratio output/target, 1 = as sharp), the same
    ratio against the target's noise-free plane (embedded stacks only; else empty), the residual's
    spectral peak at Nyquist (dB; ~0 for noise, tens of dB for a checkerboard), images.
    """
    parts = []
    blocks: list[tuple[str, Mapping[str, Any]]] = [("all test stacks", results)]
    groups = results.get("groups") or {}
    if len(groups) > 1:
        blocks += [(g, v) for g, v in groups.items()]
    for label, block in blocks:
        if block.get("reconstruction"):
            parts.append(f"**Reconstruction at t = 0** (D(E(x_0)) vs x_0), {label}\n\n"
                         + _summary_table(block["reconstruction"]))
        for key, title, target in (("synthesis", "Blur synthesis (intermediate planes)", "real plane k"),
                                   ("deblur", "Deblurring (plane k -> in-focus plane)", "real plane 0")):
            parts.append(f"**{title}**, vs {target}, {label}\n\n" + _summary_table(block[key]))
    return "\n".join(parts)


def _per_plane_table(section: Mapping[str, Any], positions: Sequence[float]) -> str:
    planes = sorted({int(k) for v in section.values() for k in v["per_plane"]})
    cols = ["Method", *[f"z{k} (t={positions[k]:.2f})" for k in planes]]
    rows = []
    for m, v in section.items():
        row = {"Method": m}
        for k, c in zip(planes, cols[1:]):
            pp = v["per_plane"].get(str(k))
            if pp:
                nf = pp.get("detail_noise_free")
                extra = (f" / {pp['detail']:.2f} / {'—' if nf is None else format(nf, '.2f')} / {pp['nyquist_db']:.0f}"
                         if "detail" in pp else "")
                row[c] = f"{pp['psnr']:.2f} / {pp['ssim']:.3f}{extra}"
            else:
                row[c] = None
        rows.append(row)
    return format_table(rows, cols)


def blur_sections(results: Mapping[str, Any], figures: Sequence[str | Path] = ()) -> list[Section]:
    """Data and method lead with the summary tables, per-plane tables, latent linearity, the figure
    links (``figures``: files in the report's ``figures/`` folder) and the published-reference note."""
    d = results["data"]
    lead = Section(None, [
        f"Data: `{d['root']}` ({'embedded synthetic default' if d['synthetic'] else 'user data'}), split "
        f"`{d['split']}`: {len(d['stacks'])} stack(s); plane positions t = "
        f"{', '.join(f'{p:.3g}' for p in results['positions'])}; intensities mapped to [0, 1] by "
        f"`{d['intensity']['mode']}`; metrics per channel, PSNR with data range 1, SSIM with a Gaussian window (σ = 1.5).",
        "Synthesis rows render plane k from the in-focus plane (and, for the two-plane rows, the most-blurred plane) at "
        "its position t_k; the Gaussian baseline uses one sigma per plane fitted on these same test stacks "
        "(optimistic), as does the disk baseline; the oracle row blurs with the true PSF of the embedded stacks. "
        "Deblurring rows estimate the in-focus plane from plane k and the most-blurred plane with "
        "α = t_k: latent `(E(z_k) − α·E(blurred)) / (1 − α)` vs the same formula in pixel space; Richardson–Lucy "
        f"({(results.get('deconvolution') or {}).get('richardson_lucy_iterations', '?')} iterations) and Wiener "
        f"(balance {(results.get('deconvolution') or {}).get('wiener_balance', '?')}) from scikit-image's `restoration` "
        "deconvolve plane k alone, with the true PSF (known radius) or an estimated one (a Gaussian per plane fitted on "
        "the validation stacks). `+ detail` rows add back the autoencoder's reconstruction residuals, interpolated like "
        "the latents (exact at t = 0 and t = 1). Detail kept: Laplacian variance of the output over the target's; "
        "detail kept (vs noise-free): over the target's noise-free plane, rendered by the same physical model without "
        "shot and read noise (embedded stacks only; the noisy target's own noise inflates its Laplacian variance, so "
        "against it even the true PSF keeps a few per cent, and values above 1 mean added noise or artefacts); "
        "Nyquist peak: the residual's power at the period-2 frequencies over the median high-frequency power.",
        blur_table(results),
    ])
    pp_body = []
    groups = results.get("groups") or {}
    for label, block in ([(g, v) for g, v in groups.items()] if len(groups) > 1 else [("all test stacks", results)]):
        pp_body += [f"**Synthesis**, {label}", _per_plane_table(block["synthesis"], results["positions"]),
                    f"**Deblurring**, {label}", _per_plane_table(block["deblur"], results["positions"])]
    per_plane = Section("Per plane (PSNR dB / SSIM / detail kept / detail kept vs noise-free / Nyquist peak dB)", pp_body)
    sig = ", ".join(f"z{k}: {v:.2f}" for k, v in results["gaussian_sigmas"].items())
    refs = ", ".join(f"{n}: {m['reference_sigma']:.2f}" for n, m in results["models"].items())
    linearity = Section("Latent linearity", [
        "Relative deviation: ‖E(x_k) − lerp(E(x_0), E(x_last), t_k)‖ / ‖E(x_last) − E(x_0)‖ averaged over intermediate "
        "planes (0 = exactly linear); step cosine: cosine similarity of consecutive latent steps (1 = straight path).",
        format_table([{"Model": n, "relative deviation": f"{v['relative_deviation']:.4f}",
                       "step cosine": f"{v['step_cosine']:.4f}"} for n, v in results["linearity"].items()],
                     ["Model", "relative deviation", "step cosine"]),
        f"Fitted Gaussian sigmas (pixels) per plane: {sig}. Single-image reference blur σ (from training): {refs}.",
    ])
    out = [lead, per_plane, linearity]
    sources = sources_section(results["models"], [f"Test data: {len(d['stacks'])} stack(s) of `{d['root']}`, split "
                                                  f"`{d['split']}` ({'embedded synthetic default' if d['synthetic'] else 'user data'})."])
    out.append(sources)
    if figures:
        out.append(figures_section({Path(f).stem: f for f in figures}, compact=True))
    refs = results["references"]
    body = [str(refs["note"]).strip()] if refs.get("note") else []
    if refs.get("citation"):
        body.insert(0, f"Method: {str(refs['citation']).strip()}.")
    if results.get("references_note"):
        body.append(f"*{results['references_note']}*")
    out.append(Section("Published reference", body))
    return out


def write_blur_report(out_dir: str | Path, results: dict[str, Any], figures: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Write ``report.json`` and ``report.md`` (atomically) for figures already drawn in
    ``out_dir/figures``; ``results["files"]`` (also in ``report.json``) lists ``markdown``, ``json``
    and ``figures``."""
    paths = report_files(out_dir)
    results["files"] = {"markdown": str(paths["markdown"]), "json": str(paths["json"]),
                        "figures": [str(f) for f in figures]}
    return write_report(out_dir, title=TITLE, sections=blur_sections(results, figures), results=results)


def _figure(nrows: int, ncols: int, scale: float = 1.6):
    fig = new_figure((scale * ncols + 1.2, scale * nrows + 0.4))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _plot_planes(bundles: Mapping[str, BlurModel], stacks: Sequence[tuple[str, torch.Tensor]], positions: Sequence[float],
                 path: Path) -> Path:
    """Rows per stack: real planes, latent synthesis (two planes) per model, pixel interpolation."""
    p = len(positions)
    rows_per = 2 + len(bundles)
    fig, axes = _figure(rows_per * len(stacks), p)
    t = torch.tensor(positions, dtype=torch.float32)
    with torch.no_grad():
        for s, (sname, x) in enumerate(stacks):
            x1 = x[:1]  # first channel
            r0 = s * rows_per
            for k in range(p):
                show_image(axes[r0][k], x1[0, k], f"z{k}  t={positions[k]:.2f}" if s == 0 else None)
            axes[r0][0].set_ylabel(f"{sname}\nreal", fontsize=8)
            for j, (name, b) in enumerate(bundles.items()):
                y = synthesize_blur(b.model.eval(), x1[:, 0].expand(p, -1, -1, -1), x1[:, -1].expand(p, -1, -1, -1),
                                    t.to(x.device))
                for k in range(p):
                    show_image(axes[r0 + 1 + j][k], y[k])
                axes[r0 + 1 + j][0].set_ylabel(f"{name}" if len(bundles) > 1 else "latent", fontsize=8)
            lerp = torch.lerp(x1[:, 0].expand(p, -1, -1, -1), x1[:, -1].expand(p, -1, -1, -1), t.to(x.device).view(-1, 1, 1, 1))
            for k in range(p):
                show_image(axes[r0 + rows_per - 1][k], lerp[k])
            axes[r0 + rows_per - 1][0].set_ylabel("pixel interp.", fontsize=8)
    return save_figure(fig, path)


def _plot_levels(bundles: Mapping[str, BlurModel], stacks: Sequence[tuple[str, torch.Tensor]], levels: Sequence[float],
                 path: Path) -> Path:
    """Synthesis across t from the in-focus plane and its PSF reference (t < 0: towards focus, t > 1: beyond)."""
    from ...augment.blur import defocus_blur

    fig, axes = _figure(len(stacks) * len(bundles), len(levels) + 1)
    lv = torch.tensor(levels, dtype=torch.float32)
    with torch.no_grad():
        r = 0
        for sname, x in stacks:
            sharp = x[:1, 0]
            for name, b in bundles.items():
                ref = defocus_blur(sharp, b.reference_sigma, "gaussian")
                y = synthesize_blur(b.model.eval(), sharp.expand(len(levels), -1, -1, -1), ref.expand(len(levels), -1, -1, -1),
                                    lv.to(x.device))
                show_image(axes[r][0], sharp[0], "input (z0)" if r == 0 else None)
                axes[r][0].set_ylabel(sname if len(bundles) == 1 else f"{sname}\n{name}", fontsize=8)
                for j, level in enumerate(levels):
                    show_image(axes[r][j + 1], y[j], f"t = {level:g}" if r == 0 else None)
                r += 1
    return save_figure(fig, path)


def _inset(ax: Any, img: Any, box: tuple[int, int, int]) -> None:
    """A 2.5× zoom of ``img[y:y+s, x:x+s]`` in the corner of ``ax`` away from that window (and its frame)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    from ...evaluate.report.figures import to_numpy

    y, x, s = box
    a = np.clip(np.squeeze(np.asarray(to_numpy(img), dtype=np.float32)), 0, 1)
    h, w = a.shape[-2:]
    left = x + s / 2 > w / 2  # the window is on the right: the inset goes left
    top = y + s / 2 > h / 2  # the window is low (image rows grow downwards): the inset goes up
    ins = ax.inset_axes([0.0 if left else 0.55, 0.55 if top else 0.0, 0.45, 0.45])
    ins.imshow(a[y : y + s, x : x + s], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ins.set_xticks([])
    ins.set_yticks([])
    for sp in ins.spines.values():
        sp.set_edgecolor("yellow")
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), s, s, fill=False, edgecolor="yellow", linewidth=0.8))


def plot_strip(rows: Sequence[tuple[str, Sequence[Any]]], titles: Sequence[str], box: tuple[int, int, int],
               path: Path) -> Path:
    """A strip of planes (one row per method, one column per plane) with a zoomed inset in every panel."""
    ncols = max(len(r) for _, r in rows)
    fig, axes = _figure(len(rows), ncols, scale=1.9)
    for i, (label, imgs) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(imgs) or imgs[j] is None:
                ax.axis("off")
                continue
            show_image(ax, imgs[j], titles[j] if i == 0 else None)
            _inset(ax, imgs[j], box)
        axes[i][0].set_ylabel(label, fontsize=7)
    return save_figure(fig, path)


def plot_psnr_curves(results: Mapping[str, Any], path: Path, group: str | None = None) -> Path:
    """PSNR vs blur position t per method: synthesis (left) and deblurring (right)."""
    block = (results.get("groups") or {}).get(group, results) if group else results
    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "synthesis", "synthesis of plane k"), (axes[1], "deblur", "deblurring plane k")):
        for m, v in block[key].items():
            pp = sorted(v["per_plane"].values(), key=lambda d: d["t"])
            ax.plot([d["t"] for d in pp], [d["psnr"] for d in pp], marker="o", ms=3, label=m,
                    linestyle="-" if m.startswith("latent") or ": latent" in m else "--")
        ax.set_xlabel("blur position t of plane k")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{title} ({group or 'all test stacks'})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save_figure(fig, path)
