from .multi_branch_iou_metric import MultiBranchIoUMetric

__all__ = ['MultiBranchIoUMetric']
