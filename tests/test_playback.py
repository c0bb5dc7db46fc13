"""The listener's view of a stream: a gapless player's schedule and its stalls."""

from __future__ import annotations

from kokoro_engine._playback import play


def test_chunks_that_arrive_in_time_play_without_a_stall() -> None:
    playback = play([(0.3, 2.0), (1.0, 3.0), (4.0, 5.0)])
    assert playback.first_sound_s == 0.3
    assert playback.underruns == 0
    assert playback.end_s == 0.3 + 10.0


def test_a_late_chunk_is_a_stall_of_exactly_its_lateness() -> None:
    playback = play([(0.2, 1.0), (2.0, 1.0), (2.5, 1.0)])
    assert playback.gaps == ((1.2, 0.8),)
    assert playback.underrun_s == 0.8
    assert playback.end_s == 4.0


def test_the_player_waits_for_its_preroll_before_it_starts() -> None:
    playback = play([(0.2, 0.05), (0.4, 0.05), (0.6, 2.0)], preroll_s=0.1)
    assert playback.first_sound_s == 0.4  # two 50 ms chunks make the 0.1 s pre-roll
    assert playback.gaps == ((0.5, 0.1),)


def test_nothing_to_play() -> None:
    assert play([]).underruns == 0
