"""Export a small PyTorch classifier (4 features -> 3 class probabilities) with torch.export, batch size dynamic."""

import sys

import torch


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.layers(x)
        return {"logits": logits, "probs": torch.softmax(logits, dim=-1)}


def main(path: str) -> None:
    torch.manual_seed(0)
    example = (torch.randn(2, 4),)
    program = torch.export.export(Classifier().eval(), example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "classifier.pt2")
