# The image installs Nexus from its wheel, as a user would, not from the source tree.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nexus ./nexus
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
WORKDIR /app
COPY --from=wheel /wheels /wheels
# With the `fast` extra: uvloop is the event loop the image serves on.
RUN pip install --no-cache-dir "$(ls /wheels/*.whl)[fast]" && rm -rf /wheels
COPY tests/support/mock_backend.py tests/support/mock_engine.py ./tests/support/
COPY deploy ./deploy
CMD ["nexus", "serve"]
