"""Audio quality metrics: how close a predicted mixture waveform is to the true mixture.

Every metric takes two mono float waveforms ``(nb_samples,)`` of the same length, the reference
(true mixture) first and the estimate (prediction) second, and returns a Python float. They are
computed in float64 whatever the input precision, so float32 predictions do not cost accuracy.

=====================  ====================================================  ==================
name                   what                                                  better
=====================  ====================================================  ==================
snr                    signal-to-noise ratio, dB                             higher
si_sdr                 scale-invariant SDR (Le Roux et al. 2019), dB          higher
lsd                    log-spectral distance, dB                             lower
spectral_convergence   relative Frobenius error of STFT magnitudes           lower
mrstft                 multi-resolution STFT distance (Parallel WaveGAN)     lower
=====================  ====================================================  ==================

Silence never gives NaN: each metric documents what it returns instead (a finite value or +-inf).
`aggregate` drops non-finite values, so a metric that returns inf for identical signals does not
poison a mean over a test set.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vocals2song import audio
from vocals2song.errors import Vocals2SongError
from vocals2song.gate import power_scale

#: Added to the energies in `si_sdr`: machine epsilon, far below the energy of any audible signal,
#: so it only matters when a signal is (near) digital silence, where it turns 0/0 into a number.
SI_SDR_EPS = float(np.finfo(np.float64).eps)
#: Added to STFT power in `lsd`, as in the usual definition (``log10(|X|^2 + 1e-8)`` on an unnormalised STFT
#: of audio in [-1, 1]): a floor 134 dB under a full-scale sine at n_fft 2048, so silent bins compare equal
#: instead of as log(0). The floor is low enough that near-silent detail weighs as much as loud detail.
LSD_EPS = 1e-8
#: Floor on STFT power in `mrstft`, as in Parallel WaveGAN's ``stft()`` (magnitude >= ~3.2e-4).
MRSTFT_EPS = 1e-7
#: (n_fft, hop) pairs for `mrstft`; the window is n_fft long.
MRSTFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))


def _check_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two mono waveforms and return them as float64 ``(nb_samples,)`` arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    for name, y in (("reference", reference), ("estimate", estimate)):
        if y.ndim != 1:
            raise Vocals2SongError(f"metrics need mono (nb_samples,) waveforms, the {name} has shape {y.shape}")
        # A NaN sample would make every metric NaN; say so here rather than report NaN scores.
        if not np.all(np.isfinite(y)):
            raise Vocals2SongError(f"the {name} waveform has non-finite samples (NaN or inf)")
    if len(reference) != len(estimate):
        raise Vocals2SongError(f"reference and estimate differ in length: {len(reference)} vs {len(estimate)} samples")
    if len(reference) == 0:
        raise Vocals2SongError("reference and estimate are empty")
    return reference, estimate


def _magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """float64 ``(nb_samples,)`` -> STFT magnitude ``(n_fft // 2 + 1, 1 + nb_samples // hop)``.

    Centred frames padded with zeros, so signals shorter than ``n_fft`` still give frames.
    """
    return np.abs(audio.stft(y, n_fft, hop, n_fft))


def snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio in dB; inf when identical (see `audio.snr_db`)."""
    reference, estimate = _check_pair(reference, estimate)
    return float(audio.snr_db(reference, estimate))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., "SDR - half-baked or well
    done?", 2019): the estimate is split into its projection on the reference (the target) and the
    rest (the error); SI-SDR = 10 log10(|target|^2 / |error|^2). Both signals are made zero-mean first.

    Scaling the estimate does not change it. `SI_SDR_EPS` is added to the energies, as torchmetrics
    does, so it is always finite: identical signals give ~10 log10(|reference|^2 / eps) (> 100 dB for
    audible signals), two silent signals 0 dB, a silent estimate 0 dB, a silent reference with a
    non-silent estimate a very low value.
    """
    reference, estimate = _check_pair(reference, estimate)
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    scale = float(np.dot(estimate, reference)) / (float(np.dot(reference, reference)) + SI_SDR_EPS)
    target = scale * reference
    error = estimate - target
    ratio = (float(np.dot(target, target)) + SI_SDR_EPS) / (float(np.dot(error, error)) + SI_SDR_EPS)
    return float(10.0 * np.log10(ratio))


def plane_lsd(u: np.ndarray, u_true: np.ndarray, range_db: float, bins_axis: int) -> float:
    """The log-spectral distance in dB of two codec magnitude planes (``u`` in [0, 1], so floored at the image's
    floor): per frame the RMS over ``bins_axis`` of the dB difference, then the mean over every frame (and tile).
    Training's ``val_lsd`` on tiles ``(k, rows, frames)`` and calibration's on whole songs ``(nb_bins, nb_frames)``."""
    db = (np.asarray(u) - np.asarray(u_true)) * range_db
    return float(np.mean(np.sqrt(np.mean(np.square(db), axis=bins_axis))))


def lsd(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 2048, hop: int = 512) -> float:
    """Log-spectral distance in dB: per frame, the RMS over bins of the difference of the power
    spectra in dB (``10 log10(|X|^2 + LSD_EPS)``), then the mean over frames. 0 when identical;
    finite for silence (silent bins sit at the -80 dB floor).
    """
    reference, estimate = _check_pair(reference, estimate)
    ref_db = 10.0 * np.log10(_magnitude(reference, n_fft, hop) ** 2 + LSD_EPS)
    est_db = 10.0 * np.log10(_magnitude(estimate, n_fft, hop) ** 2 + LSD_EPS)
    per_frame = np.sqrt(np.mean((ref_db - est_db) ** 2, axis=0))
    return float(np.mean(per_frame))


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 2048, hop: int = 512) -> float:
    """``|| |X| - |Y| ||_F / || |X| ||_F`` with X, Y the STFTs of reference and estimate: the error in
    STFT magnitude relative to the reference's. 0 when identical. A silent reference gives 0 when
    the estimate is silent too and inf otherwise.
    """
    reference, estimate = _check_pair(reference, estimate)
    ref_mag = _magnitude(reference, n_fft, hop)
    error = float(np.linalg.norm(ref_mag - _magnitude(estimate, n_fft, hop)))
    norm = float(np.linalg.norm(ref_mag))
    if norm == 0.0:
        return 0.0 if error == 0.0 else float("inf")
    return error / norm


def mrstft(reference: np.ndarray, estimate: np.ndarray,
           resolutions: tuple[tuple[int, int], ...] = MRSTFT_RESOLUTIONS) -> float:
    """Multi-resolution STFT distance, the loss of Parallel WaveGAN (Yamamoto et al. 2020) and
    auraloss: for each ``(n_fft, hop)`` in ``resolutions`` (Hann window of n_fft samples), spectral
    convergence plus the mean absolute difference of log magnitudes, then the mean over resolutions.

    As in Parallel WaveGAN, magnitudes are ``sqrt(max(|X|^2, MRSTFT_EPS))``, so silence is finite.
    Differences from Parallel WaveGAN's defaults: resolutions, full-length windows, zero (not
    reflect) padding of the centred frames.
    """
    reference, estimate = _check_pair(reference, estimate)
    if not resolutions:
        raise Vocals2SongError("mrstft needs at least one (n_fft, hop) resolution")
    total = 0.0
    for n_fft, hop in resolutions:
        ref_mag = np.sqrt(np.maximum(_magnitude(reference, n_fft, hop) ** 2, MRSTFT_EPS))
        est_mag = np.sqrt(np.maximum(_magnitude(estimate, n_fft, hop) ** 2, MRSTFT_EPS))
        convergence = np.linalg.norm(ref_mag - est_mag) / np.linalg.norm(ref_mag)
        log_distance = np.mean(np.abs(np.log(ref_mag) - np.log(est_mag)))
        total += float(convergence + log_distance)
    return total / len(resolutions)


Metric = Callable[[np.ndarray, np.ndarray], float]

#: The metrics `compute_all` reports, by name.
METRICS: dict[str, Metric] = {
    "snr": snr,
    "si_sdr": si_sdr,
    "lsd": lsd,
    "spectral_convergence": spectral_convergence,
    "mrstft": mrstft,
}

#: Which direction is better for each metric in `METRICS`.
HIGHER_IS_BETTER: dict[str, bool] = {
    "snr": True,
    "si_sdr": True,
    "lsd": False,
    "spectral_convergence": False,
    "mrstft": False,
}


def compute_all(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Every metric in `METRICS` with its default settings: name -> value."""
    reference, estimate = _check_pair(reference, estimate)
    return {name: metric(reference, estimate) for name, metric in METRICS.items()}


# --- what a listener hears: loudness, bands, buzz, harmony ----------------------------------------------

#: lsd bands in Hz: bass and fundamentals, the vocal range, and the top (`band_lsd`)
LSD_BANDS: dict[str, tuple[float, float]] = {"lsd_low": (0.0, 500.0), "lsd_mid": (500.0, 4000.0),
                                             "lsd_high": (4000.0, float("inf"))}
#: STFT for `harmony`: 4096 samples resolve semitones down to about 130 Hz at 44.1 kHz
CHROMA_FFT, CHROMA_HOP = 4096, 2048
#: frames whose true accompaniment is quieter than this, relative to its loudest frame, are not scored
SOUNDING_DB = -40.0


def loudness_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """RMS level of the estimate minus the reference's, in dB: positive when the estimate is louder.

    0 when both are silent; +-inf when only one is.
    """
    reference, estimate = _check_pair(reference, estimate)
    ref, est = float(np.mean(reference**2)), float(np.mean(estimate**2))
    if ref == est:
        return 0.0
    if ref == 0.0 or est == 0.0:
        return float("inf") if ref == 0.0 else float("-inf")
    return float(10.0 * np.log10(est / ref))


def band_lsd(reference: np.ndarray, estimate: np.ndarray, sr: int, band: tuple[float, float],
             n_fft: int = 2048, hop: int = 512) -> float:
    """`lsd` over the STFT bins whose centre frequency lies in ``band`` = (low, high) Hz."""
    reference, estimate = _check_pair(reference, estimate)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    rows = (freqs >= band[0]) & (freqs < band[1])
    if not rows.any():
        raise Vocals2SongError(f"no STFT bin lies in {band[0]:g}-{band[1]:g} Hz at {sr} Hz, n_fft {n_fft}")
    ref_db = 10.0 * np.log10(_magnitude(reference, n_fft, hop)[rows] ** 2 + LSD_EPS)
    est_db = 10.0 * np.log10(_magnitude(estimate, n_fft, hop)[rows] ** 2 + LSD_EPS)
    return float(np.mean(np.sqrt(np.mean((ref_db - est_db) ** 2, axis=0))))


def buzz_db(y: np.ndarray, sr: int, hop: int = 256, segment: int = 1 << 15) -> float:
    """How far a pulse at the STFT frame rate (``sr / hop``, 172 Hz at 44.1 kHz and hop 256) stands out, in dB.

    Frames that do not fit together (an inconsistent spectrogram) make the overlap-add pulse once per hop. That
    shows as a line at the frame rate in the spectrum of the power envelope ``y**2``: this is the line's level
    (the strongest Welch bin within 1.5 Hz of it) over the median of its neighbourhood (+-40 Hz without +-4 Hz).
    Real music scores a few dB (a note may sit near 172 Hz); a buzzing decoder scores 20 dB and more.
    """
    import scipy.signal

    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2 * hop or not np.any(y):
        return 0.0
    nperseg = min(segment, len(y))
    freqs, power = scipy.signal.welch(y**2, fs=sr, nperseg=nperseg, detrend="constant")
    rate = sr / hop
    line = power[np.abs(freqs - rate) <= 1.5]
    near = power[(np.abs(freqs - rate) <= 40.0) & (np.abs(freqs - rate) > 4.0)]
    if line.size == 0 or near.size == 0:
        return 0.0
    return float(10.0 * np.log10((line.max() + 1e-30) / (np.median(near) + 1e-30)))


def chroma(power: np.ndarray, sr: int, n_fft: int = CHROMA_FFT, fmin: float = 55.0) -> np.ndarray:
    """Power spectrogram ``(n_fft // 2 + 1, nb_frames)`` -> pitch-class profile ``(12, nb_frames)``.

    Each bin between ``fmin`` and 5 kHz adds its power to the pitch class nearest its centre frequency (A = 0).
    Plain binning: librosa's chroma filterbank costs seconds of start-up for the same picture.
    """
    freqs = np.arange(power.shape[0]) * sr / n_fft
    rows = np.flatnonzero((freqs >= fmin) & (freqs <= 5000.0))
    classes = np.round(12.0 * np.log2(freqs[rows] / 440.0)).astype(int) % 12
    out = np.zeros((12, power.shape[1]), dtype=np.float64)
    np.add.at(out, classes, power[rows])
    return out


def chroma_correlation(true_acc: np.ndarray, est_acc: np.ndarray) -> float:
    """The median, over frames where ``true_acc`` ``(12, nb_frames)`` sounds (within `SOUNDING_DB` of its loudest),
    of the correlation between the two chroma; 0 in a frame ``est_acc`` leaves silent, NaN when nothing sounds."""
    energy = true_acc.sum(axis=0)
    if not np.any(energy > 0):
        return float("nan")
    sounding = energy > energy.max() * 10 ** (SOUNDING_DB / 10)
    a = true_acc[:, sounding] - true_acc[:, sounding].mean(axis=0)
    b = est_acc[:, sounding] - est_acc[:, sounding].mean(axis=0)
    norm = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    r = np.where(norm > 0, (a * b).sum(axis=0) / np.maximum(norm, 1e-300), 0.0)
    return float(np.median(r))


def harmony(vocals: np.ndarray, truth: np.ndarray, estimate: np.ndarray, sr: int) -> float:
    """Does the estimate play the right chords? The median, over frames where the true accompaniment sounds, of
    the correlation between the chroma of the estimated accompaniment and the true accompaniment's.

    The true accompaniment is ``truth - vocals``; the estimated one is the power the estimate adds to the vocals,
    ``max(|E|**2 - |V|**2, 0)``, per STFT bin. A frame where the estimate adds nothing scores 0 (no harmony), so
    the vocals alone score 0, and a chroma that does not follow the chords scores about 0 too.
    """
    vocals, truth = _check_pair(vocals, truth)
    _, estimate = _check_pair(truth, estimate)
    V = _magnitude(vocals, CHROMA_FFT, CHROMA_HOP) ** 2
    true_acc = chroma(_magnitude(truth - vocals, CHROMA_FFT, CHROMA_HOP) ** 2, sr)
    est_acc = chroma(np.maximum(_magnitude(estimate, CHROMA_FFT, CHROMA_HOP) ** 2 - V, 0.0), sr)
    return chroma_correlation(true_acc, est_acc)


def plane_harmony(u_in: np.ndarray, u_true: np.ndarray, u_pred: np.ndarray, range_db: float, sr: int,
                  n_fft: int) -> float:
    """`harmony` on codec magnitude planes ``(nb_bins, nb_frames)`` (lowest frequency first; the Nyquist bin may be
    left out): the median over frames where the true added power sounds of the correlation between the chroma of
    the power the prediction adds to the input and the chroma of the power the truth adds. No phase and no audio,
    so training can compute it on its validation tiles (history's ``val_harmony``).

    Only the bins over the frequency where a semitone spans a bin count (725 Hz at 44.1 kHz and n_fft 1024): the
    partials that tell the pitch classes. Under it each bin stands for several pitch classes and the chroma follows
    the spectral envelope: with every bin from 55 Hz the mean accompaniment scored 0.91 on the one-band chorales'
    validation tiles (the truth 1, another tune's accompaniment 0.55); from 725 Hz, 0.17 (another tune -0.07)."""
    k = power_scale(range_db)  # expm1(k u) is the power over the floor's

    def power(u):
        return np.expm1(k * np.asarray(u, dtype=np.float64))

    base = power(u_in)
    fmin = (sr / n_fft) / (2.0 ** (1.0 / 12.0) - 1.0)
    true_acc = chroma(np.maximum(power(u_true) - base, 0.0), sr, n_fft, fmin)
    est_acc = chroma(np.maximum(power(u_pred) - base, 0.0), sr, n_fft, fmin)
    return chroma_correlation(true_acc, est_acc)


#: what `music_metrics` reports, and which way is better (None: nearer 0 is better, as the abs value says)
MUSIC_HIGHER_IS_BETTER: dict[str, bool | None] = {
    "loudness_db": None, "lsd_low": False, "lsd_mid": False, "lsd_high": False, "buzz_db": False, "harmony": True,
}


def music_metrics(vocals: np.ndarray, truth: np.ndarray, estimate: np.ndarray, sr: int) -> dict[str, float]:
    """Loudness difference, lsd per band, frame-rate buzz and harmony of an estimated song (see each function)."""
    values = {"loudness_db": loudness_db(truth, estimate)}
    values.update({name: band_lsd(truth, estimate, sr, band) for name, band in LSD_BANDS.items()})
    values["buzz_db"] = buzz_db(estimate, sr)
    values["harmony"] = harmony(vocals, truth, estimate, sr)
    return values


def aggregate(items: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Summarise per-item metrics (e.g. one `compute_all` dict per test track):
    metric name -> ``{"median": ..., "mean": ...}``, in the order names first appear.

    Non-finite values (inf SNR for a perfect prediction, NaN) are left out, so one of them does not
    make the mean inf. A metric with no finite value gets NaN for both, which says "no data".
    """
    values: dict[str, list[float]] = {}
    for item in items:
        for name, value in item.items():
            values.setdefault(name, []).append(float(value))
    summary: dict[str, dict[str, float]] = {}
    for name, vals in values.items():
        finite = np.array([v for v in vals if np.isfinite(v)], dtype=np.float64)
        if finite.size == 0:
            summary[name] = {"median": float("nan"), "mean": float("nan")}
        else:
            summary[name] = {"median": float(np.median(finite)), "mean": float(np.mean(finite))}
    return summary
