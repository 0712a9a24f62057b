# Watchpost image for the production stack (docker-compose.yml): web, worker, beat and migrate all run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN groupadd --system --gid 10001 watchpost \
    && useradd --system --uid 10001 --gid watchpost --home-dir /app --shell /usr/sbin/nologin watchpost

# Pango and a font for the PDF report (WeasyPrint); nothing else from the OS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Only what the application needs at run time (no .env, .venv, var/, tests or benchmarks in the image).
COPY manage.py ./
COPY config/ config/
COPY incidents/ incidents/
COPY playbooks/ playbooks/
COPY integrations/ integrations/
COPY templates/ templates/
COPY static/ static/

# Static files are baked into the image and served by whitenoise. The key and database are
# build-time placeholders: collectstatic needs settings to import, not secrets or a server.
RUN WATCHPOST_SECRET_KEY=build-only-not-a-secret \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /app/var/broker /tmp/build.sqlite3 \
    && mkdir -p /app/var/media \
    && chown -R watchpost:watchpost /app/var

USER watchpost
EXPOSE 8000
# No control socket: it would go to $HOME/.gunicorn, which is read-only for this user.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", "--no-control-socket"]
