FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nexus ./nexus
COPY lua ./lua
COPY tests/mock_backend.py ./tests/mock_backend.py
COPY deploy ./deploy
RUN pip install --no-cache-dir -e .
CMD ["nexus", "serve"]
