-- Run once by the postgres image when its data volume is new (docker-compose.yaml mounts it into
-- /docker-entrypoint-initdb.d): shotline's own database beside Dagster's, owned by the same user.
-- For an existing volume: docker compose -f deploy/docker-compose.yaml exec postgres createdb -U dagster shotline
CREATE DATABASE shotline;
