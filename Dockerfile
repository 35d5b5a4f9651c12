# The image of docker-compose.yaml: Airflow 3.3.2 on Python 3.11 with this project's locked requirements.
# The code (dags/, plugins/, recsys_tasks/, sql/) is mounted by docker-compose.yaml, not copied, so a code change
# needs no rebuild; a change of requirements.lock does.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -r /tmp/requirements.lock \
    && pip install --no-cache-dir "apache-airflow-providers-celery" "apache-airflow-providers-postgres" "psycopg2-binary"
