#!/usr/bin/env bash
# Part of deb_roundtrip.sh, run inside xvfb-run: starts the installed app, waits for its window, asks the starter
# model a question through the window (typed with xdotool), takes a screenshot, quits with Ctrl+Q.
#   deb_gui_check.sh OUT_DIR GUI_CHAT(1|0)
# Environment: GUI_CHECK_APP (the program to start, default `llamadesk` on PATH; e.g. the AppImage),
#              GUI_CHECK_CLI (the program that reads the history while the window is open, default GUI_CHECK_APP;
#              for the AppImage, its extracted copy: a second extract-and-run would share the window's temporary copy),
#              GUI_CHECK_WINDOW_S (seconds to wait for the window, default 60).
set -euo pipefail
out="$1" gui_chat="$2"
app="${GUI_CHECK_APP:-llamadesk}"
cli="${GUI_CHECK_CLI:-$app}"
window_s="${GUI_CHECK_WINDOW_S:-60}"
started=$SECONDS
"$app" > "$out/gui.log" 2>&1 &
pid=$!
win=""
for _ in $(seq 1 $((window_s * 2))); do
  win="$(xdotool search --onlyvisible --class LlamaDesk 2>/dev/null | tail -n 1)" || true
  [ -n "$win" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the app exited before showing a window" >&2; exit 1; }
  sleep 0.5
done
[ -n "$win" ] || { echo "no LlamaDesk window after $window_s s" >&2; kill "$pid"; exit 1; }
echo "window: $((SECONDS - started)) s after launch" > "$out/gui-times.txt"
xprop -id "$win" WM_CLASS > "$out/wm_class.txt"
xdotool windowfocus --sync "$win" 2>/dev/null || true
if [ "$gui_chat" = 1 ]; then
  # The first keys typed into a fresh LlamaDesk window get lost (a plain QLineEdit under the same Xvfb gets them
  # all): type a throwaway word first; the loop below clears the composer before typing the question.
  sleep 1
  xdotool type --delay 40 "hello "
  sleep 1
  replied=""
  for _ in $(seq 1 60); do
    id="$("$cli" history list 2>/dev/null | awk 'NR == 1 {print $1}')" || true
    json=""
    if [ -n "$id" ]; then json="$("$cli" history show --json "$id" 2>/dev/null)" || true; fi
    if ! grep -q '"role": "user"' <<< "$json"; then
      # Not sent yet: the composer ignores keys while the model loads, so clear it and type the whole question again.
      xdotool key ctrl+a BackSpace
      xdotool type --delay 40 "What is 2+2?"
      xdotool key Return
    elif [ "$(grep -c '"status": "complete"' <<< "$json")" -ge 2 ]; then
      replied=yes  # the question and the finished reply
      break
    fi
    sleep 1
  done
  [ -n "$replied" ] || { echo "no reply in the window (does the model picker list the bundled model?)" >&2; }
  echo "reply in the window: $((SECONDS - started)) s after launch" >> "$out/gui-times.txt"
  sent="$("$cli" history show --json "$id" | grep -m 1 '"content"' | sed 's/.*"content": "\(.*\)",$/\1/')" || true
  echo "question sent from the window: $sent" >> "$out/gui-times.txt"
  sleep 1  # the last batch of tokens reaches the screen
fi
scrot --overwrite "$out/screenshot.png"
xdotool windowfocus --sync "$win" 2>/dev/null || true
xdotool key ctrl+q
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then echo "the app did not quit on Ctrl+Q" >&2; kill "$pid"; exit 1; fi
wait "$pid"
[ "$gui_chat" != 1 ] || [ -n "$replied" ]
