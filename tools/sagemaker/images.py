"""Which inference container a model runs in: the one table (docs/execute.md "Inference images").

A plan's own `image_uri` wins; then the configured `AGENTOPS_DEFAULT_IMAGE_URI` (your ECR image); otherwise
an AWS Deep Learning Container chosen by framework (`AGENTOPS_INFERENCE_FRAMEWORK`) and the instance
family: a GPU instance gets the CUDA build, everything else the CPU build. A GPU model in a CPU image loads
on the CPU (slow, or out of memory) and a CPU instance cannot start a CUDA image, so guessing is never an
option: a region without the Deep Learning Containers registry is refused with the setting that fixes it.
"""

from __future__ import annotations

from agentops.errors import AgentOpsError
from agentops.settings import Settings

# Instance families with NVIDIA GPUs (ml.<family>.<size>). Inferentia/Trainium (inf*, trn*) need Neuron
# builds, which this table does not carry: they are refused rather than given a CPU image.
GPU_FAMILIES = frozenset({"p2", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "g4dn", "g5", "g6", "g6e", "gr6"})
NEURON_FAMILIES = frozenset({"inf1", "inf2", "trn1", "trn1n", "trn2"})

# (framework, accelerator) -> repository:tag in the Deep Learning Containers registry.
IMAGES: dict[tuple[str, str], str] = {
    ("pytorch", "cpu"): "pytorch-inference:2.3.0-cpu-py311-ubuntu20.04-sagemaker",
    ("pytorch", "gpu"): "pytorch-inference:2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker",
    ("tensorflow", "cpu"): "tensorflow-inference:2.16.1-cpu-py310-ubuntu20.04-sagemaker",
    ("tensorflow", "gpu"): "tensorflow-inference:2.16.1-gpu-py310-cu122-ubuntu22.04-sagemaker",
}

# Regions served by the Deep Learning Containers account 763104351884 (aws/deep-learning-containers,
# available_images.md). Opt-in and China regions use other accounts: set AGENTOPS_DEFAULT_IMAGE_URI there.
DLC_ACCOUNT = "763104351884"
DLC_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-north-1",
        "ap-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
    }
)


def instance_family(instance_type: str) -> str:
    """`ml.g5.xlarge` -> `g5`."""
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "ml" else ""


def accelerator(instance_type: str) -> str:
    family = instance_family(instance_type)
    if family in NEURON_FAMILIES:
        raise AgentOpsError(
            f"{instance_type} runs AWS Neuron, which needs a Neuron-compiled model and image: set image_uri in the plan "
            "or AGENTOPS_DEFAULT_IMAGE_URI"
        )
    return "gpu" if family in GPU_FAMILIES else "cpu"


def inference_image(instance_type: str, settings: Settings) -> str:
    """The image a model on `instance_type` runs in when the plan names none."""
    if settings.default_image_uri:
        return settings.default_image_uri
    kind = accelerator(instance_type)
    region = settings.aws_region
    if region not in DLC_REGIONS:
        raise AgentOpsError(
            f"no Deep Learning Container image is known for region {region}: set AGENTOPS_DEFAULT_IMAGE_URI to the "
            f"{settings.inference_framework} {kind.upper()} inference image to use"
        )
    return f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{IMAGES[(settings.inference_framework, kind)]}"


def planned_image(image_uri: str | None, instance_type: str, settings: Settings) -> str:
    """The plan's own image, else the one the table chooses."""
    return image_uri or inference_image(instance_type, settings)
