from fractions import Fraction

from frs_cli.timecode import Clock, format_tc, round_ms


def test_seconds_are_exact_fractions_from_pts_and_time_base():
    clock = Clock(Fraction(1, 11988), Fraction(8005, 1_000_000))
    # The Hamilton clip's first frame: pts 10214 at 1/11988, container start 8005 us.
    assert clock.seconds(10214) == Fraction(10214, 11988) - Fraction(8005, 1_000_000)
    assert round_ms(clock.seconds(10214)) == 0.844


def test_pts_is_the_inverse_of_seconds_rounding_up():
    clock = Clock(Fraction(1, 12800), Fraction(0))
    assert clock.pts(Fraction(1, 2)) == 6400
    assert clock.pts(0.00001) == 1  # never a pts before the asked-for time
    assert clock.seconds(clock.pts(Fraction(7, 3))) >= Fraction(7, 3)


def test_timecode_format_and_rounding():
    assert format_tc(0) == "00:00:00.000"
    assert format_tc(Fraction(1, 3)) == "00:00:00.333"
    assert format_tc(Fraction(2, 3)) == "00:00:00.667"
    assert format_tc(3723.0005) == "01:02:03.001"
    assert format_tc(Fraction(-1, 2)) == "-00:00:00.500"
    assert format_tc(100 * 3600) == "100:00:00.000"


def test_round_ms_half_up():
    assert round_ms(Fraction(1, 2000)) == 0.001
    assert round_ms(Fraction(2999, 1000)) == 2.999
