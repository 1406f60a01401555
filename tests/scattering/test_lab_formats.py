"""Diffractometer files (XRDML, BRML, Bruker RAW4, GSAS) written here from known values and read back
through read_pattern: axis in 2θ degrees, intensities, σ, wavelength and step as the file states them."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nanosolve.errors import InputError
from nanosolve.scattering.readers import read_pattern, read_patterns

TTH = 10.0 + 0.02 * np.arange(301)  # 10-16 degrees
Y = np.round(100 + 900 * np.exp(-0.5 * ((TTH - 13.0) / 0.08) ** 2))
KA1, KA2 = 1.5405980, 1.5444260


# ----- writers of each format (from the formats' public descriptions) -----------------------------
def write_xrdml(path: Path, list_positions: bool = False, counts_tag: str = "intensities") -> Path:
    if list_positions:
        pos = f"<listPositions>{' '.join(f'{v:.4f}' for v in TTH)}</listPositions>"
    else:
        pos = f"<startPosition>{TTH[0]:.4f}</startPosition><endPosition>{TTH[-1]:.4f}</endPosition>"
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5" status="Completed">
  <sample type="To be analyzed"><id>1</id><name>LaB6 test</name></sample>
  <xrdMeasurement measurementType="Scan" status="Completed">
    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">{KA1}</kAlpha1><kAlpha2 unit="Angstrom">{KA2}</kAlpha2>
      <kBeta unit="Angstrom">1.3922500</kBeta><ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg">{pos}</positions>
        <positions axis="Omega" unit="deg"><startPosition>5.0</startPosition><endPosition>8.0</endPosition></positions>
        <commonCountingTime unit="seconds">0.5</commonCountingTime>
        <{counts_tag} unit="counts">{' '.join(str(int(v)) for v in Y)}</{counts_tag}>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
""")
    return path


def write_brml(path: Path) -> Path:
    rows = "".join(f"<Datum>0.5,1,{t:.4f},{t / 2:.4f},{int(v)}</Datum>" for t, v in zip(TTH, Y))
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<RawData xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <DataRoutes><DataRoute RouteFlag="Final">
    <ScanInformation ScanName="Coupled TwoTheta/Theta">
      <ScaleAxes>
        <ScaleAxisInfo AxisId="TwoTheta" AxisName="TwoTheta" Unit="°"><Start>{TTH[0]}</Start>
          <Stop>{TTH[-1]}</Stop><Increment>0.02</Increment></ScaleAxisInfo>
        <ScaleAxisInfo AxisId="Theta" AxisName="Theta" Unit="°"><Start>5</Start><Stop>8</Stop>
          <Increment>0.01</Increment></ScaleAxisInfo>
      </ScaleAxes>
      <MeasurementPoints>{TTH.size}</MeasurementPoints><TimePerStep>0.5</TimePerStep>
    </ScanInformation>
    {rows}
  </DataRoute></DataRoutes>
  <FixedInformation><Instrument><PrimaryTracks><TrackInfoData><MountedOptics><InfoData>
    <Tube><WaveLengthAlpha1 Value="{KA1}" Unit="Å"/><WaveLengthAlpha2 Value="{KA2}" Unit="Å"/>
      <WaveLengthRatio Value="0.5"/></Tube>
  </InfoData></MountedOptics></TrackInfoData></PrimaryTracks></Instrument></FixedInformation>
</RawData>"""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Experiment0/DataContainer.xml", "<DataContainer/>")
        zf.writestr("Experiment0/RawData0.xml", xml)
    return path


def write_raw4(path: Path, datum_size: int = 8) -> Path:
    buf = bytearray(b"RAW4.00".ljust(61, b"\0"))
    key, val = b"SAMPLEID".ljust(24, b"\0"), b"LaB6 test\0\0\0"
    buf += struct.pack("<II", 10, 36 + len(val)) + b"\0" * 4 + key + val        # type 10: key / value
    src = bytearray(120)
    struct.pack_into("<II", src, 0, 30, 120)
    struct.pack_into("<5d", src, 72, (2 * KA1 + KA2) / 3, KA1, KA2, 1.39225, 0.5)   # type 30: tube
    buf += src
    head = bytearray(160)
    struct.pack_into("<I", head, 0, 160)                                          # a range starts
    head[32:32 + 14] = b"Locked Coupled"
    struct.pack_into("<ddIf", head, 72, TTH[0], 0.02, TTH.size, 500.0)           # start, step, n, ms
    struct.pack_into("<d", head, 112, KA1)
    drive = bytearray(64)
    struct.pack_into("<II", drive, 0, 50, 64)
    struct.pack_into("<II", head, 136, datum_size, len(drive))
    buf += head + drive
    for v in Y:
        buf += struct.pack("<f", v) + (struct.pack("<i", 1) if datum_size == 8 else b"")
    path.write_bytes(bytes(buf))
    return path


def write_gsas(path: Path, rtype: str, wavelength_line: bool = False) -> Path:
    lines = ["LaB6 test pattern".ljust(80)]
    if wavelength_line:
        lines.append("# wavelength = 1.5406".ljust(80))
    lines.append("Instrument parameter file:inst.prm".ljust(80))
    n = TTH.size
    sig = np.sqrt(Y)
    if rtype == "FXYE":
        lines.append(f"BANK 1 {n} {n} CONS {TTH[0] * 100:.2f} 2.0 0 0 FXYE")
        lines += [f"{t * 100:.4f} {v:.2f} {s:.4f}" for t, v, s in zip(TTH, Y, sig)]
    elif rtype == "ESD":
        lines.append(f"BANK 1 {n} {int(np.ceil(n / 5))} CONS {TTH[0] * 100:.2f} 2.0 0 0 ESD")
        for i in range(0, n, 5):
            lines.append("".join(f"{v:8.1f}{s:8.2f}" for v, s in zip(Y[i:i + 5], sig[i:i + 5])).ljust(80))
    elif rtype == "STD":
        lines.append(f"BANK 1 {n} {int(np.ceil(n / 10))} CONS {TTH[0] * 100:.2f} 2.0 0 0 STD")
        for i in range(0, n, 10):
            lines.append("".join(f" 1{v:6.0f}" for v in Y[i:i + 10]).ljust(80))
    path.write_text("\n".join(lines) + "\n")
    return path


# ----- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("list_positions,tag", [(False, "intensities"), (True, "counts")])
def test_xrdml(tmp_path, list_positions, tag):
    p = read_pattern(write_xrdml(tmp_path / "scan.xrdml", list_positions, tag))
    assert p.x_unit == "tth" and p.kind == "xrd"
    np.testing.assert_allclose(p.x, TTH, atol=1e-4)
    np.testing.assert_allclose(p.y, Y)
    np.testing.assert_allclose(p.sigma, np.sqrt(Y))
    assert p.wavelength == pytest.approx(KA1)
    assert p.metadata["step"] == pytest.approx(0.02, abs=1e-6)
    assert p.metadata["wavelength_kAlpha2"] == pytest.approx(KA2)
    assert p.metadata["counting_time_s"] == 0.5 and p.metadata["sample"] == "LaB6 test"


def test_brml(tmp_path):
    p = read_pattern(write_brml(tmp_path / "scan.brml"))
    np.testing.assert_allclose(p.x, TTH, atol=1e-4)
    np.testing.assert_allclose(p.y, Y)
    assert p.wavelength == pytest.approx(KA1)
    assert p.metadata["step"] == pytest.approx(0.02) and p.metadata["time_per_step_s"] == 0.5


@pytest.mark.parametrize("datum_size", [4, 8])
def test_raw4(tmp_path, datum_size):
    p = read_pattern(write_raw4(tmp_path / "scan.raw", datum_size))
    np.testing.assert_allclose(p.x, TTH, atol=1e-9)
    np.testing.assert_allclose(p.y, Y)
    assert p.wavelength == pytest.approx(KA1)
    assert p.metadata["step"] == pytest.approx(0.02)
    assert p.metadata["time_per_step_s"] == pytest.approx(0.5)
    assert p.metadata["scan_type"] == "Locked Coupled" and p.metadata["header"]["SAMPLEID"] == "LaB6 test"


def test_raw_older_version_refused(tmp_path):
    f = tmp_path / "old.raw"
    f.write_bytes(b"RAW1.01" + bytes(800))
    with pytest.raises(InputError, match="RAW version 3"):
        read_pattern(f)


@pytest.mark.parametrize("rtype,ext", [("FXYE", ".fxye"), ("ESD", ".gsa"), ("STD", ".gsa"), ("FXYE", ".gss")])
def test_gsas_centidegrees(tmp_path, rtype, ext):
    p = read_pattern(write_gsas(tmp_path / f"scan{ext}", rtype), wavelength="CuKa1")
    # centidegrees in the file: 2θ comes out 10-16°, not 1000-1600°
    np.testing.assert_allclose(p.x, TTH, atol=1e-6)
    np.testing.assert_allclose(p.y, Y)
    np.testing.assert_allclose(p.sigma, np.sqrt(Y), rtol=1e-3 if rtype != "STD" else 1e-9)
    assert p.metadata["step"] == pytest.approx(0.02)
    assert p.wavelength == pytest.approx(1.5406, abs=1e-4)


def test_gsas_wavelength_from_header(tmp_path):
    assert read_pattern(write_gsas(tmp_path / "w.fxye", "FXYE", wavelength_line=True)).wavelength == 1.5406


def test_gsas_tof_refused(tmp_path):
    f = tmp_path / "tof.gsa"
    f.write_text("title\nBANK 1 3 3 TIME_MAP 1 0 0 0 FXYE\n1000 1 1\n1001 2 1\n1002 3 1\n")
    with pytest.raises(InputError, match="time of flight"):
        read_pattern(f)


def test_sniffed_without_extension(tmp_path):
    src = write_xrdml(tmp_path / "a.xrdml")
    other = tmp_path / "scan_export"
    other.write_bytes(src.read_bytes())
    np.testing.assert_allclose(read_pattern(other).y, Y)
    raw = write_raw4(tmp_path / "b.raw")
    other = tmp_path / "bruker.dat4"
    other.write_bytes(raw.read_bytes())
    np.testing.assert_allclose(read_pattern(other).y, Y)


def test_unknown_binary_is_a_clear_error(tmp_path):
    f = tmp_path / "scan.xyz123"
    f.write_bytes(b"\x89\x00\x13binary junk" * 20)
    with pytest.raises(InputError, match=r"unknown pattern file format '\.xyz123'.*\.xrdml"):
        read_pattern(f)


def test_two_scans_read_patterns(tmp_path):
    f = write_xrdml(tmp_path / "two.xrdml")
    text = f.read_text()
    scan = text[text.index("<scan "):text.index("</scan>") + 7]
    f.write_text(text.replace(scan, scan + scan.replace('appendNumber="0"', 'appendNumber="1"')))
    ps = read_patterns(f)
    assert len(ps) == 2 and [p.metadata["scan"] for p in ps] == [1, 2]


def test_cli_info_reads_lab_files_and_names_unknown_ones(tmp_path):
    from typer.testing import CliRunner

    from nanosolve.cli.main import app

    res = CliRunner().invoke(app, ["info", str(write_gsas(tmp_path / "s.fxye", "FXYE", wavelength_line=True))])
    assert res.exit_code == 0, res.output
    assert "10 – 16" in res.output and "1.54060" in res.output
    junk = tmp_path / "scan.abc"
    junk.write_bytes(b"\x00\x01\x02 not anything" * 10)
    res = CliRunner().invoke(app, ["info", str(junk)])
    assert res.exit_code == 2
    assert "unknown file format .abc: not a pattern file" in res.output and ".xrdml" in res.output
