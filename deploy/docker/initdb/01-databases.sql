-- Extra databases on the shared PostgreSQL of the compose stack.
CREATE DATABASE lakefs OWNER flywheel;
CREATE DATABASE mlflow OWNER flywheel;
