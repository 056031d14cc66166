# GPU image for marl_jax: CUDA 12 runtime, Python 3.11, jax with CUDA wheels.
#   docker build -t marl_jax .
#   docker run --gpus all --rm -v $PWD/runs:/app/runs marl_jax --exp_dir=runs/gpu
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 SDL_VIDEODRIVER=dummy
RUN apt-get update && apt-get install -y --no-install-recommends \
        software-properties-common ca-certificates git \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY requirements.txt .
# Local packages requirements.txt installs (the Melting Pot assets shim).
COPY third_party/ third_party/
# The pinned CPU set, then the CUDA plugin of the same jax version.
RUN pip install --upgrade pip \
    && pip install -r requirements.txt \
    && pip install "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')"
COPY . .
RUN pip install --no-deps -e .

ENTRYPOINT ["python", "train.py"]
