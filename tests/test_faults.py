"""The fault-injection suite, as a list a reviewer reads top to bottom: each fault of real footage,
real streams, real feature files and real users, what vad answers (exit code, the line it prints,
what it leaves behind), and the test that injects it. The tests live in tests/test_faults_*.py
(and, for faults covered earlier, the files named); the checks below keep this list and those
files in step: every listed test exists, and every test of a test_faults_ file is listed.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Fault:
    case: str  # what goes wrong
    exit: str  # the exit code (or "-" where the run goes on and the fault is handled)
    answer: str  # what vad prints or does; files left behind
    test: str  # file::function that injects it


FAULTS = [
    # -- outputs of vad score and vad eval --------------------------------------------------------
    Fault("a user's a.proxy.mp4 is an input and a.mp4's report proxy would overwrite it", "2",
          "one line naming both files, before any work; folder unchanged", "test_faults_outputs.py::test_a_users_proxy_among_the_inputs_is_not_overwritten"),
    Fault("a user's CSV, proxy, page, index or plot where an output goes", "2",
          "'... would overwrite this file, which vad did not write'; unchanged", "test_faults_outputs.py::test_a_users_file_where_an_output_goes_is_refused"),
    Fault("a rerun on a folder holding vad's own reports", "0",
          "vad's outputs rewritten; its earlier proxies among the inputs skipped with a warning",
          "test_faults_outputs.py::test_a_rerun_on_a_report_folder_rewrites_vads_own_outputs"),
    Fault("telling vad's outputs from a user's files", "-", "marks in pages, proxies, CSV, JSON and plots",
          "test_faults_outputs.py::test_vads_own_outputs_are_known_by_their_marks"),
    Fault("--html into a path whose folder is a file", "2", "refused before scoring; nothing printed",
          "test_faults_outputs.py::test_an_output_folder_that_is_a_file_is_refused_before_scoring"),
    Fault("--html into a read-only folder", "2", "refused before scoring; folder empty",
          "test_faults_outputs.py::test_a_read_only_output_folder_is_refused_before_scoring"),
    Fault("an output name over NAME_MAX", "2", "'the name ... is 256 bytes, longer than the 255 ...'; nothing created",
          "test_faults_outputs.py::test_an_output_name_longer_than_the_file_system_allows_is_refused_before_scoring"),
    Fault("a final name of 241-255 bytes", "0", "written; its temporary name fits too",
          "test_faults_outputs.py::test_a_name_of_255_bytes_gets_a_temporary_name_the_file_system_accepts"),
    Fault("a write error during scoring (file too large, disk full)", "1", "one line naming the file; nothing partial",
          "test_faults_outputs.py::test_a_write_error_during_the_run_is_one_line_and_exit_1"),
    Fault("vad eval --scores-out where a user's file or a file-for-folder is in the way", "2", "refused before scoring; nothing written",
          "test_faults_outputs.py::test_scores_out_checks_every_id_before_the_work"),
    Fault("a video id that escapes the --scores-out folder", "2", "refused before writing any file",
          "test_faults_outputs.py::test_frame_scores_refuse_an_id_outside_the_folder_before_writing_any"),
    Fault("a 100,000-frame video's page", "0", "10,000 points (bucket maxima, 4 decimals), the full CSV linked",
          "test_faults_outputs.py::test_the_page_of_a_long_video_holds_rounded_maxima"),
    Fault("rounded page scores against the CLI's events", "-", "the same events at every 4-decimal threshold",
          "test_faults_outputs.py::test_the_page_keeps_the_clis_events_at_every_4_decimal_threshold"),
    Fault("--html-embed with a proxy over 50 MB", "1", "one line pointing at the non-embedded form; nothing left",
          "test_faults_outputs.py::test_html_embed_refuses_a_proxy_over_the_limit"),
    Fault("--html-embed memory", "-", "the proxy's base64 streamed into the page, never held as copies",
          "test_faults_outputs.py::test_an_embedded_page_streams_the_proxy_instead_of_holding_copies"),
    Fault("a long-video page in Chromium", "-", "draws its curve and its one-frame spike",
          "test_report.py::test_a_long_video_page_draws_its_maxima"),
    # -- streams and vad watch -----------------------------------------------------------------------
    Fault("resolution change mid-file (320x240 then 640x360), vad score", "0", "every frame scored",
          "test_faults_streams.py::test_resolution_change_mid_file_vad_score_scores_every_frame"),
    Fault("resolution change mid-file, vad watch", "0", "the whole file scored, as vad score",
          "test_faults_streams.py::test_resolution_change_mid_file_vad_watch_scores_the_whole_file"),
    Fault("resolution change with resize next to the network", "-", "the same crops as in the workers",
          "test_faults_streams.py::test_resolution_change_with_geometry_next_to_the_network"),
    Fault("--on-event program writes to stdout and stderr", "0", "both on vad's stderr; stdout stays JSON lines",
          "test_faults_streams.py::test_on_event_output_goes_to_stderr_not_into_the_json_lines"),
    Fault("--on-event 'sleep 100'", "0", "killed after --on-event-timeout, logged",
          "test_faults_streams.py::test_on_event_hung_program_is_killed_after_on_event_timeout"),
    Fault("--on-event false", "0", "'exited with status 1' logged",
          "test_faults_streams.py::test_on_event_nonzero_exit_is_logged"),
    Fault("--on-event 'echo \"x'", "2", "'No closing quotation; quote it as in a shell line'",
          "test_faults_streams.py::test_on_event_malformed_command_line_exits_2"),
    Fault("--on-event naming a missing program", "2", "'no such program', before the source is opened",
          "test_faults_streams.py::test_on_event_missing_program_exits_2_before_the_source_is_opened"),
    Fault("SIGTERM while a hook runs", "0", "returns promptly, the hook killed",
          "test_faults_streams.py::test_sigterm_while_a_hook_runs_exits_promptly"),
    Fault("SIGTERM while the model loads", "0", "no output (was 143)", "test_faults_streams.py::test_sigterm_while_the_model_loads_exits_0"),
    Fault("watch --out in a missing folder", "2", "one line, before the model loads",
          "test_faults_streams.py::test_out_in_a_missing_folder_exits_2_before_the_model_loads"),
    Fault("watch --out on a read-only path", "2", "one line, before the model loads",
          "test_faults_streams.py::test_out_on_a_read_only_path_exits_2_before_the_model_loads"),
    Fault("watch --out /dev/full", "1", "'cannot write (No space left on device); the watch stopped'",
          "test_faults_streams.py::test_out_on_a_full_disk_exits_1_with_one_line"),
    Fault("vad watch into a pipe closed after the first line", "-", "stops cleanly; --out holds what was scored",
          "test_faults_streams.py::test_watch_into_a_closed_pipe_stops_at_the_first_line"),
    Fault("any command into a closed pipe (vad weights list | head -1)", "0", "quiet, no traceback",
          "test_faults_streams.py::test_every_command_into_a_closed_pipe_exits_0_quietly"),
    Fault("a source that keeps stalling, --reconnect 1", "0", "ends after 1 reopen in a row without a snippet",
          "test_faults_streams.py::test_reconnect_budget_counts_connections_that_deliver_no_snippet"),
    Fault("a source that delivers, drops, reconnects", "0", "budget reset by a snippet; the snippet before a drop ends its run",
          "test_faults_streams.py::test_reconnect_budget_resets_after_a_snippet_and_each_run_ends_at_the_drop"),
    Fault("random bytes, truncated, mutated and size-changing MPEG-TS over HTTP", "0/1/2", "scored or one line, never a hang",
          "test_fuzz.py::test_watch_sources_are_scored_or_refused_in_one_line"),
    # -- models, caches, feature files ---------------------------------------------------------------
    Fault("a model with NaN weights, vad score", "1", "per video: 'the model ... gave NaN or infinite scores'; nothing written for it",
          "test_faults_data.py::test_score_nan_model_refuses_each_video_and_writes_nothing_for_it"),
    Fault("a model with NaN weights, vad watch", "1", "one line; no NaN line written",
          "test_faults_data.py::test_watch_nan_model_stops_with_one_line_and_writes_no_nan"),
    Fault("a model with NaN weights, vad eval", "1", "one line; --scores-out not created", "test_faults_data.py::test_eval_nan_model_refused_with_one_line"),
    Fault("cache metadata n_frames 1000 for 4 snippets, 'abc', -3; n_snippets or segments wrong", "2",
          "'FILE: corrupt metadata: FIELD ...; re-extract or re-import'", "test_faults_data.py::test_eval_corrupt_metadata_field_named"),
    Fault("corrupt metadata in vad train and vad gt import --cache", "2", "the entry and the field named; no model, no GT",
          "test_faults_data.py::test_train_and_gt_import_corrupt_metadata_exit_2"),
    Fault("Sultani C3D features without frame counts, GT in real frames", "2", "says the GT counts real frames and how to give them",
          "test_faults_data.py::test_sultani_without_frame_counts_eval_says_how_to_give_them"),
    Fault("--frame-counts that do not fit the features", "1/2", "the file, the line or the count named",
          "test_faults_data.py::test_import_frame_counts_that_do_not_fit"),
    Fault("Sultani's segment-to-frame mapping in vad eval and --scores-out", "0", "segment i covers floor(i*N/32)..floor((i+1)*N/32)-1",
          "test_faults_data.py::test_sultani_eval_maps_segments_to_real_frames"),
    Fault("the same mapping for --train-gt's pseudo-label precision", "-", "one definition",
          "test_faults_data.py::test_segment_truth_of_pooled_segments_uses_the_same_mapping"),
    Fault("train and evaluate on Sultani features in real frame numbers", "0", "eval over every real frame",
          "test_faults_data.py::test_sultani_train_with_eval_and_train_gt_in_real_frames"),
    Fault("the released C3D files against UCF-Crime's official annotation", "0", "2199 frames, 240 abnormal (was exit 2, '512 frames')",
          "test_faults_data.py::test_real_ucf_c3d_files_evaluate_against_the_official_annotation"),
    # -- covered earlier -----------------------------------------------------------------------------
    Fault("hostile names and provenance strings in a report page", "-", "shown as text in Chromium; nothing runs",
          "test_fuzz.py::test_report_pages_show_hostile_names_and_provenance_as_text"),
    Fault("mutated and truncated video files", "-", "decoded or refused (DecodeError), never a hang",
          "test_fuzz.py::test_mutated_video_decodes_or_is_refused"),
    Fault("random label, GT and frame-count tables", "2", "'FILE:LINE: what', never a crash", "test_fuzz.py::test_table_importers_never_crash"),
    Fault("SIGKILL of vad extract mid-write", "-", "no entry looks complete that is not; the rerun resumes",
          "test_interruptions.py::test_extract_killed_then_resumed"),
    Fault("two vad extract on one cache", "-", "claims: each video written once", "test_concurrency.py::test_two_processes_share_the_work"),
    Fault("disk full while extracting", "1", "'cannot write the features of ID ...: No space left on device'; no partial entry",
          "test_concurrency.py::test_disk_full_clean_message_no_partial_entry"),
    Fault("SIGKILL of vad train mid-iteration", "-", "--resume gives the same model",
          "test_interruptions.py::test_train_killed_mid_iteration_resumes_to_the_same_model"),
    Fault("a page that would overwrite its own video", "2", "refused", "test_report.py::test_page_may_not_overwrite_its_video"),
    Fault("an error becomes its exit code in one place", "1/2", "'vad: error: ...', a bug 'internal error'",
          "test_errors.py::test_errors_map_to_one_line_and_their_exit_code"),
]


def functions_of(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_listed_fault_names_a_test_that_exists():
    missing = []
    for fault in FAULTS:
        file, function = fault.test.split("::")
        if not (TESTS / file).is_file() or function not in functions_of(TESTS / file):
            missing.append(fault.test)
    assert missing == []


def test_every_test_of_the_fault_files_is_listed():
    listed = {fault.test for fault in FAULTS}
    unlisted = sorted(f"{path.name}::{name}" for path in TESTS.glob("test_faults_*.py") for name in functions_of(path)
                      if f"{path.name}::{name}" not in listed)
    assert unlisted == []
    assert len({fault.case for fault in FAULTS}) == len(FAULTS)
