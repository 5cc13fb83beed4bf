#!/bin/sh
# Regenerates docs/evaluation-chart.svg: the report's charts over the demo's records.
# Run from the repository's root with humasflow installed with its charts extra.
set -e
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
humasflow demo --db "$dir/demo.db" > /dev/null
humasflow --db "$dir/demo.db" report --chart docs/evaluation-chart.svg > /dev/null
