"""The perturbation runner: one engine that runs a model over many perturbed inputs.

Every perturbation explainer and metric describes its work as ``n_items`` perturbations, each
expanding to ``rows_per_item`` model inputs (typically one per image of the batch). The runner asks
for chunks of perturbed inputs, runs the model on them under ``torch.inference_mode`` (optionally
with autocast and channels_last), checks the output batch size once, and hands the outputs (or the
target scores) to a ``consume`` callback that accumulates whatever the method needs. Nothing of size
``n_items`` is ever held, so peak memory is O(batch_size x input) whatever the number of
perturbations.

On CUDA the work is queued asynchronously on the current stream: the kernels that build chunk k+1 are
launched while the forward of chunk k is still running, as long as ``consume`` does not synchronise.
Every chunk after the first runs inside :func:`pyxai.engine.sync.hot_path` (``PYXAI_SYNC_DEBUG=1``
makes any host sync there an error).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch

from pyxai.engine.checks import check_output_batch
from pyxai.engine.sync import hot_path
from pyxai.engine.targets import ResolvedTarget

ForwardFunc = Callable[..., torch.Tensor]
#: A chunk of model inputs: one Tensor, or a tuple of Tensors (models with several inputs) that
#: share the row dimension and are passed to the model as separate positional arguments.
Chunk = torch.Tensor | tuple[torch.Tensor, ...]


def chunk_rows(chunk: Chunk) -> int:
    """Number of model input rows in a chunk (dim 0 of its first tensor)."""
    return (chunk[0] if isinstance(chunk, tuple) else chunk).shape[0]


def chunk_head(chunk: Chunk, n: int = 1) -> Chunk:
    """The first ``n`` rows of a chunk (of every tensor of a tuple chunk)."""
    return tuple(t[:n] for t in chunk) if isinstance(chunk, tuple) else chunk[:n]

#: CPU default for ``batch_size=None``: model inputs per forward.
CPU_BATCH = 64
#: Cap on the bytes of one chunk of perturbed inputs when the batch size is chosen automatically.
MAX_CHUNK_BYTES = 256 * 2**20


def auto_batch_size(sample: Chunk, forward_func: ForwardFunc | None = None) -> int:
    """Model inputs per forward pass chosen to fit memory.

    CPU: :data:`CPU_BATCH` rows, fewer if one chunk of inputs would exceed :data:`MAX_CHUNK_BYTES`.
    CUDA: measures the peak memory of a one-row forward and fills half of the free memory with it
    (at most 512 rows).

    Args:
        sample: Tensor[1, ...] one model input row (or a tuple of them).
        forward_func: the model (needed on CUDA for the measurement).
    """
    parts = sample if isinstance(sample, tuple) else (sample,)
    row_bytes = max(1, sum(t[:1].numel() * t.element_size() for t in parts))
    sample_t = sample
    sample = parts[0]
    cap = max(1, MAX_CHUNK_BYTES // row_bytes)
    if sample.device.type != "cuda" or forward_func is None:
        return int(min(CPU_BATCH, cap))
    # No global statistic is reset (another part of the program may be reading the peak): the
    # one-row forward's peak is bounded by the allocator's peak afterwards. When an earlier peak
    # was higher, that bound over-estimates the row and the batch is smaller, never too large.
    torch.cuda.synchronize(sample.device)
    before = torch.cuda.memory_allocated(sample.device)
    with torch.inference_mode():
        forward_func(chunk_head(sample_t))
    per_row = max(row_bytes, torch.cuda.max_memory_allocated(sample.device) - before)
    free, _ = torch.cuda.mem_get_info(sample.device)
    return int(max(1, min(512, cap, (free // 2) // per_row)))


class PerturbationRunner:
    """Runs ``forward_func`` over chunks of perturbed inputs.

    Args:
        forward_func: model or callable mapping Tensor[R, ...] to outputs with R rows.
        batch_size: model inputs per forward pass; None chooses one that fits memory.
        show_progress: show a tqdm progress bar.
        autocast: dtype for ``torch.autocast`` (e.g. ``torch.bfloat16``) or None.
        channels_last: convert 4-D chunks to channels_last memory format before the forward.
        additional_forward_args: extra positional arguments passed to every forward call.
        grad_enabled: run with autograd on (optimisation-based methods); default inference mode.
    """

    def __init__(
        self,
        forward_func: ForwardFunc,
        batch_size: int | None = None,
        show_progress: bool = False,
        autocast: torch.dtype | None = None,
        channels_last: bool = False,
        additional_forward_args: Sequence[Any] | None = None,
        grad_enabled: bool = False,
    ) -> None:
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) <= 0):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.forward_func = forward_func
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.autocast = autocast
        self.channels_last = channels_last
        if additional_forward_args is not None and not isinstance(additional_forward_args, tuple):
            additional_forward_args = (additional_forward_args,)
        self.args = tuple(additional_forward_args or ())
        self.grad_enabled = grad_enabled
        self._auto_rows: int | None = None

    def forward(self, x: Chunk) -> torch.Tensor:
        """One forward pass with the runner's settings (mode, autocast, memory format).

        ``x`` is a Tensor or a tuple of Tensors (passed as separate positional arguments).
        """
        xs = x if isinstance(x, tuple) else (x,)
        if self.channels_last:
            xs = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
                       for t in xs)
        device = xs[0].device
        mode = torch.enable_grad() if self.grad_enabled else torch.inference_mode()
        cast = (
            torch.autocast(device.type, dtype=self.autocast)
            if self.autocast is not None
            else contextlib.nullcontext()
        )
        with mode, cast:
            out = self.forward_func(*xs, *self.args)
        if self.autocast is not None and isinstance(out, torch.Tensor) and out.is_floating_point():
            out = out.float()
        return out

    def rows_per_forward(self, sample: Chunk) -> int:
        """The batch size in model inputs (resolving ``None`` with :func:`auto_batch_size`)."""
        if self.batch_size is not None:
            return int(self.batch_size)
        if self._auto_rows is None:  # measured once per runner (one runner per call)
            self._auto_rows = auto_batch_size(sample, self.forward)
        return self._auto_rows

    def run(
        self,
        n_items: int,
        make_chunk: Callable[[int, int], Chunk],
        consume: Callable[[int, int, torch.Tensor], Any],
        rows_per_item: int = 1,
        target: ResolvedTarget | None = None,
        desc: str = "pyxai",
        sample: Chunk | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Evaluate perturbations ``[0, n_items)`` chunk by chunk.

        Args:
            n_items: number of perturbations.
            make_chunk: ``(start, stop) -> Tensor[(stop - start) * rows_per_item, ...]`` perturbed
                inputs (or a tuple of such Tensors for models with several inputs), item-major
                (row ``j * rows_per_item + b`` is item ``start + j``, row ``b``).
            consume: ``(start, stop, values)`` called once per chunk, in order; ``values`` are the
                model outputs, or the target scores Tensor[(stop - start) * rows_per_item] when
                ``target`` is given.
            rows_per_item: model inputs per perturbation (e.g. the number of images).
            target: a :class:`ResolvedTarget` of ``rows_per_item`` samples, to gather the scores on
                device (row ``j * rows_per_item + b`` is scored for sample ``b``).
            desc: progress bar label.
            sample: one model input row, used to pick the batch size when it is None.
            stop: optional early-stopping predicate checked after every chunk.

        Returns:
            The number of perturbations evaluated (``n_items`` unless ``stop`` ended the run).
        """
        if n_items <= 0:
            return 0
        if self.batch_size is None and sample is None:
            sample = chunk_head(make_chunk(0, 1))
        rows = self.rows_per_forward(sample) if self.batch_size is None else int(self.batch_size)
        per_chunk = max(1, rows // max(1, rows_per_item))
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_items, desc=desc, unit="pert")
        done = 0
        first = True
        try:
            with contextlib.ExitStack() as hot:
                while done < n_items:
                    end = min(n_items, done + per_chunk)
                    chunk = make_chunk(done, end)
                    out = self.forward(chunk)
                    if first:
                        check_output_batch(out, chunk_rows(chunk))
                    if target is not None:
                        out = target(out)
                    consume(done, end, out)
                    if bar is not None:
                        bar.update(end - done)
                    done = end
                    if first:  # every later chunk must queue without a host sync
                        hot.enter_context(hot_path((chunk[0] if isinstance(chunk, tuple)
                                                    else chunk).device))
                        first = False
                    if stop is not None and stop():
                        break
        finally:
            if bar is not None:
                bar.close()
        return done

    def outputs(self, inputs: Chunk) -> torch.Tensor:
        """Model outputs on unperturbed ``inputs`` (Tensor or tuple), in chunks of the batch size."""
        n = chunk_rows(inputs)
        rows = self.rows_per_forward(chunk_head(inputs))

        def rows_of(i: int) -> Chunk:
            if isinstance(inputs, tuple):
                return tuple(t[i : i + rows] for t in inputs)
            return inputs[i : i + rows]

        outs = [self.forward(rows_of(i)) for i in range(0, n, rows)]
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        check_output_batch(out, n)
        return out
