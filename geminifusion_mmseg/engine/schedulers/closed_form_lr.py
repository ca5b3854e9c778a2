"""Base of the learning-rate schedulers that compute their factor in closed
form from the iteration count."""
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

__all__ = ['ClosedFormIterLR']


class ClosedFormIterLR(LRSchedulerMixin, _ParamScheduler):
    """An lr scheduler that steps every iteration and whose factor of each
    group's base lr depends on the step count only, so a resumed run
    (mmengine restores ``last_step``) lands on exactly the same lr.

    Lengths are in iterations (``by_epoch=False``), or in epochs with
    ``by_epoch=True`` AND ``convert_to_iter_based=True``: then mmengine
    calls :meth:`build_iter_from_epoch`, which converts ``begin``, ``end``
    and the subclass's own lengths (:meth:`lengths_in_iters`) with the
    train dataloader's length. Subclasses set :attr:`length_names` (for
    the error message), call :meth:`require_iteration_based` first in
    their ``__init__`` and implement ``_get_value``.
    """

    #: The subclass's length arguments, as named in the error message.
    length_names = 'the lengths'

    @classmethod
    def require_iteration_based(cls, by_epoch: bool) -> None:
        """Raise for ``by_epoch=True`` (subclasses call this first, before
        validating their own arguments)."""
        if by_epoch:
            raise ValueError(
                f'{cls.__name__} steps every iteration: give '
                f'{cls.length_names} in epochs with by_epoch=True AND '
                'convert_to_iter_based=True, or in iterations with '
                'by_epoch=False.')

    def __init__(self, optimizer, begin: int, end: int, last_step: int,
                 by_epoch: bool, verbose: bool):
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    @classmethod
    def lengths_in_iters(cls, kwargs: dict, epoch_length: int) -> dict:
        """The constructor kwargs with the subclass's lengths converted from
        epochs to iterations (here: none)."""
        return kwargs

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              begin=0,
                              end=INF,
                              by_epoch=True,
                              epoch_length=None,
                              **kwargs):
        """Build an iteration-based instance from lengths in epochs."""
        assert by_epoch, 'Only epoch-based kwargs whose `by_epoch=True` can ' \
                         'be converted to iter-based.'
        assert epoch_length is not None and epoch_length > 0, \
            f'`epoch_length` must be a positive integer, ' \
            f'but got {epoch_length}.'
        return cls(
            *args,
            begin=int(begin * epoch_length),
            end=end if end == INF else int(end * epoch_length),
            by_epoch=False,
            **cls.lengths_in_iters(kwargs, epoch_length))
