"""The microscopy report: synthesis / deblurring tables, per-plane tables and the synthesis figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...evaluate.report import (
    Section,
    figures_section,
    sources_section,
    format_table,
    new_figure,
    report_files,
    save_figure,
    show_image,
    write_report,
)
from ...models.blur_autoencoder import (
    BlurModel,
    synthesize_blur,
)

__all__ = ["blur_table", "blur_sections", "write_blur_report"]

TITLE = "Defocus blur synthesis and deblurring (linear-latent autoencoder)"



def blur_table(results: Mapping[str, Any]) -> str:
    """The synthesis and deblurring tables (markdown) of :func:`evaluate_blur` results."""
    parts = []
    for key, title, target in (("synthesis", "Blur synthesis (intermediate planes)", "real plane k"),
                               ("deblur", "Deblurring (plane k -> in-focus plane)", "real plane 0")):
        rows = [{"Method": m, "PSNR (dB)": f"{v['psnr']:.2f}", "SSIM": f"{v['ssim']:.4f}", "images": v["n"]}
                for m, v in results[key].items()]
        parts.append(f"**{title}**, vs {target}\n\n" + format_table(rows, ["Method", "PSNR (dB)", "SSIM", "images"]))
    return "\n".join(parts)


def _per_plane_table(section: Mapping[str, Any], positions: Sequence[float]) -> str:
    planes = sorted({int(k) for v in section.values() for k in v["per_plane"]})
    cols = ["Method", *[f"z{k} (t={positions[k]:.2f})" for k in planes]]
    rows = []
    for m, v in section.items():
        row = {"Method": m}
        for k, c in zip(planes, cols[1:]):
            pp = v["per_plane"].get(str(k))
            row[c] = f"{pp['psnr']:.2f} / {pp['ssim']:.3f}" if pp else None
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
        "(optimistic). Deblurring rows estimate the in-focus plane from plane k and the most-blurred plane with "
        "α = t_k: latent `(E(z_k) − α·E(blurred)) / (1 − α)` vs the same formula in pixel space.",
        blur_table(results),
    ])
    per_plane = Section("Per plane (PSNR dB / SSIM)", [
        "**Synthesis**", _per_plane_table(results["synthesis"], results["positions"]),
        "**Deblurring**", _per_plane_table(results["deblur"], results["positions"]),
    ])
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
