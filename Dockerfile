# The image k8s/rayjob.yaml runs: the project with the CUDA build of torch. Not built here
# (the CUDA index is not reachable from the project's machines).
FROM python:3.11-slim
WORKDIR /opt/plasticity-sweeps
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
# torch's CUDA build first (README "torch: CPU and GPU builds"), so that the project keeps it
RUN pip install --no-cache-dir "torch>=2.4,<2.14" --index-url https://download.pytorch.org/whl/cu128
COPY pyproject.toml README.md ./
COPY plastic_models plastic_models
COPY baselines baselines
COPY sweep sweep
COPY analysis analysis
COPY examples examples
RUN pip install --no-cache-dir .
