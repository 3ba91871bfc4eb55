"""Train a potential: ``python train.py [group=option ...] [key=value ...]`` (configs in ``mliap_torch/configs/``)."""
from mliap_torch.cli.train import main

if __name__ == "__main__":
    main()
