#!/usr/bin/env bash
# Every script answers --help with exit 0, and an unknown command or option with a clear error.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

for s in engine speech agents agent central quickstart test bench; do
  expect_rc 0 "scripts/$s" --help
  expect_contains "$OUT" "Usage: scripts/" "scripts/$s --help"
done
pass "every script has --help"

for s in engine speech agents agent central; do
  expect_rc 1 "scripts/$s" frobnicate
  expect_contains "$OUT" "error: unknown command 'frobnicate'" "scripts/$s frobnicate"
done
expect_rc 1 scripts/quickstart --frobnicate
expect_contains "$OUT" "error: unknown option" "scripts/quickstart --frobnicate"
expect_rc 1 scripts/agents status --frobnicate
expect_contains "$OUT" "error: unknown option" "scripts/agents status --frobnicate"
pass "unknown commands and options fail with a message"

# A missing config is a clear error that names the file and the fix.
expect_rc 1 scripts/agents start --daemon --config "$T_TMP/nope.yaml"
expect_contains "$OUT" "nope.yaml not found" "agents start without config"
expect_contains "$OUT" "cp config/agent.example.yaml config/agent.yaml" "agents start without config"
expect_rc 1 scripts/central start --daemon --config "$T_TMP/nope.yaml"
expect_contains "$OUT" "cp config/machines.example.yaml config/machines.yaml" "central start without config"
pass "missing config files are explained"

expect_rc 3 scripts/agents status
expect_contains "$OUT" "agent: not running" "agents status when stopped"
expect_rc 3 scripts/central status
expect_rc 3 scripts/engine status
expect_rc 0 scripts/agents stop
expect_contains "$OUT" "not running" "agents stop when stopped"
pass "status/stop of stopped services"
