"""Stateless tensor kernels shared by the cores: per-sample convolutions, smoothing kernels and
filters, FFT convolution, frequency masks, cache-sized CPU chunks, OpenCV kernels for CPU tensors. No
randomness, no parameters."""

from .chunks import CPU_CHUNK_BYTES, chunk_size, chunked
from .conv import depthwise_conv2d, fold_batch, grouped_conv
from .fft import (
    box_mask,
    centred_to_fft,
    fft_freqs,
    masked_fft2,
    masked_rfftn,
    radial_frequency,
    rfft_half,
)
from .fftconv import fast_size, fft_correlate, kernel_image, kernel_rfft2, pad_index, psf_fft_conv2d
from .filters import (
    PSF_KINDS,
    filter_matrix,
    filter_matrix_np,
    filter_rows,
    fold_index,
    gaussian_filter,
    gaussian_taps,
    gaussian_weights,
    kernel_size,
    psf_kernels,
    separable_filter,
)
from .opencv import cv2_module, opencv_disabled

__all__ = [
    "CPU_CHUNK_BYTES", "chunk_size", "chunked",
    "depthwise_conv2d", "fold_batch", "grouped_conv",
    "box_mask", "centred_to_fft", "fft_freqs", "masked_fft2", "masked_rfftn",
    "radial_frequency", "rfft_half",
    "fast_size", "fft_correlate", "kernel_image", "kernel_rfft2", "pad_index", "psf_fft_conv2d",
    "PSF_KINDS", "filter_matrix", "filter_matrix_np", "filter_rows", "fold_index", "gaussian_filter",
    "gaussian_taps", "gaussian_weights", "kernel_size", "psf_kernels", "separable_filter",
    "cv2_module", "opencv_disabled",
]
