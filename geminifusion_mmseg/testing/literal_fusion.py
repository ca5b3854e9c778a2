"""The GeminiFusion layer, literally (docs/model.md): nn.MultiheadAttention
over a 2-token key sequence, one sample at a time."""
import torch
import torch.nn as nn


class JudgerMLP(nn.Module):
    """fc1 (2C -> C), GELU, fc2 (C -> C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(2 * dim, dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LiteralGeminiFusion(nn.Module):
    """Published-style fusion: loop over samples, MHA over 2 keys.

    Parameter names are those of the released checkpoints (the fusion
    parameters of one block): ``cross_attn_0_to_1`` / ``cross_attn_1_to_0``
    (``nn.MultiheadAttention``), ``relation_judger.0.fc1/fc2``,
    ``k_noise`` / ``v_noise``.

    forward(xs) takes a list [x_0, x_1] of (B, N, C) tensors and returns the
    list [y_0, y_1].
    """

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        self.cross_attn_0_to_1 = nn.MultiheadAttention(dim, num_heads)
        self.cross_attn_1_to_0 = nn.MultiheadAttention(dim, num_heads)
        self.relation_judger = nn.Sequential(
            JudgerMLP(dim), nn.Softmax(dim=-1))
        self.k_noise = nn.Embedding(2, dim)
        self.v_noise = nn.Embedding(2, dim)

    def forward(self, xs):
        x0, x1 = xs
        attns = [self.cross_attn_0_to_1, self.cross_attn_1_to_0]
        outs = [[], []]
        for b in range(x0.shape[0]):
            for m, (own, other) in enumerate(((x0[b], x1[b]), (x1[b], x0[b]))):
                q = own.unsqueeze(0)  # (1, N, C): sequence 1, batch N
                r = self.relation_judger(
                    torch.cat([q, other.unsqueeze(0)], dim=-1))
                k = torch.cat([q + self.k_noise.weight[m], q * r], dim=0)
                v = torch.cat([q + self.v_noise.weight[m],
                               other.unsqueeze(0)],
                              dim=0)
                outs[m].append(own + attns[m](q, k, v)[0].squeeze(0))
        return [torch.stack(o) for o in outs]
