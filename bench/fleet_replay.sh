#!/bin/bash
# One-off check of docs/fleet.md: a 1-hour outage of 100 sites replayed twice into one central worker.
# Run from the repository root: bash bench/fleet_replay.sh (needs mosquitto and PostgreSQL on 127.0.0.1).
set -e
T=$(mktemp -d); PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
printf "listener $PORT 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n" > $T/m.conf
[ "$(id -u)" = 0 ] && echo "user root" >> $T/m.conf
mosquitto -c $T/m.conf > $T/m.log 2>&1 & MP=$!
psql -h 127.0.0.1 -U postgres -qc "create database mh_replay"
DSN="host=127.0.0.1 user=postgres dbname=mh_replay"
export PYTHONPATH=$PWD/src
.venv/bin/meterhub central --mqtt mqtt://127.0.0.1:$PORT --dsn "$DSN" --port 0 --data $T/c > $T/c.log 2>&1 & CP=$!
sleep 6
.venv/bin/meterhub simulate-fleet --sites 100 --mqtt mqtt://127.0.0.1:$PORT --interval 60 --backfill 3600 --count 1
sleep 8
psql "$DSN" -Atc "select 'after first replay', count(*), (select count(*) from fleet_points) from fleet_messages"
.venv/bin/meterhub simulate-fleet --sites 100 --mqtt mqtt://127.0.0.1:$PORT --interval 60 --backfill 3600 --count 1
sleep 8
psql "$DSN" -Atc "select 'after second replay', count(*), (select count(*) from fleet_points), (select sum(messages) from fleet_sites), (select count(distinct ts) from fleet_messages) from fleet_messages"
kill $CP; wait $CP || true; kill $MP; wait $MP || true
psql -h 127.0.0.1 -U postgres -qc "drop database mh_replay with (force)"
