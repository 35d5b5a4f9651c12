"""The nightly HTML report and the sections the Airflow "Recommendations" page shares with it."""
from recsys_tasks.report.writer import write_report

__all__ = ["write_report"]
