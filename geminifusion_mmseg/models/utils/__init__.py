from .modal_input import check_modal_input, split_modalities

__all__ = ['check_modal_input', 'split_modalities']
