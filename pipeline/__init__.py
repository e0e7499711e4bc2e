"""Entry points: click scripts that run the library under MLflow tracking."""
