# clever-sim: the Clever Grade Passback Simulator as an image for partner CI. It does both jobs
# from the same plain install (pytest, which the contract suite runs on, is a dependency):
#   docker build -t clever-sim .
#   docker run --rm -p 8080:8080 -v clever-sim-data:/data clever-sim            # serve
#   docker run --rm --network host -v "$PWD:/cfg:ro" clever-sim \
#       clever-sim contract --config /cfg/partner.toml --sim-port 8080 --junit-xml /tmp/contract.xml
#   (or, with the first container serving: ... contract --config /cfg/partner.toml --sim-url http://127.0.0.1:8080)
# A big roster (e.g. sandbox-size, 63 MB) loads once at build time into a roster cache, so every
# container's fresh database starts from a copy (~a restart) instead of a full load:
#   FROM clever-sim
#   COPY big.json /home/clever/big.json
#   ENV CLEVER_SIM_ROSTER=/home/clever/big.json CLEVER_SIM_ROSTER_CACHE=/home/clever/roster-cache
#   RUN clever-sim fixtures cache /home/clever/big.json
#   (not under /data: a VOLUME drops what the build writes there)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLEVER_SIM_DATA_DIR=/data \
    CLEVER_SIM_ALLOWED_HOSTS="*"
# ALLOWED_HOSTS '*': other containers reach the control API as e.g. clever-sim:8080 (docs/running.md,
# "Running a shared simulator"); narrow it with -e CLEVER_SIM_ALLOWED_HOSTS=clever-sim, or add
# -e CLEVER_SIM_CONTROL_TOKEN=... where others can reach the port.

# The same install a partner does: a non-editable `pip install .` (tests/test_packaging.py
# runs exactly this in a fresh venv), then only the installed package stays in the image.
WORKDIR /src
COPY pyproject.toml README.md clever_sim.py ./
COPY simulator ./simulator
COPY contract_tests ./contract_tests
COPY fixtures ./fixtures
RUN pip install . && rm -rf /src

RUN useradd --create-home --uid 10001 clever \
    && mkdir -p /data && chown clever:clever /data
USER clever
WORKDIR /data
VOLUME ["/data"]

EXPOSE 8080
# Health: GET /_sim/health of the `serve` (or `demo`) this container runs, where its --host/--port
# say; a container running `contract`, `fixtures` or `snapshot` has no server and counts as healthy
# (simulator/healthcheck.py reads PID 1's command line; it also takes --pid N).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-m", "simulator.healthcheck"]

CMD ["clever-sim", "serve", "--host", "0.0.0.0", "--port", "8080"]
