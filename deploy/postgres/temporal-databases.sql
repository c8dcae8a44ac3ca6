-- Run once by the postgres image when its data volume is first initialised
-- (/docker-entrypoint-initdb.d): Temporal's own role and its two databases, apart from varsel's.
-- The schema inside them is made and upgraded by the temporal-schema job (deploy/temporal/).
CREATE ROLE temporal LOGIN PASSWORD 'temporal';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
