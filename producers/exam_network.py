"""Who sits CACT where: BKN's labs and the agencies of the 2024 national mapping (domain.md §2).

The simulator draws its sessions from these fixed lists so that a simulated day looks like a real one on the
operator page: 46 central agencies (ministries and national bodies) beside regional governments that partner
with the new capital (IKN), and the BKN head office plus the 14 regional offices (Kanreg) in the three time
zones. Ids are plausible, not official codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone

WIB, WITA, WIT = (timezone(timedelta(hours=h), n) for h, n in ((7, "WIB"), (8, "WITA"), (9, "WIT")))

#: 2024 figures [000]: assessed 54,440 from central agencies and 16,467 from regional ones; 88% attendance.
ASSESSED_CENTRAL_2024 = 54_440
ASSESSED_REGIONAL_2024 = 16_467
CENTRAL_SHARE_2024 = round(ASSESSED_CENTRAL_2024 / (ASSESSED_CENTRAL_2024 + ASSESSED_REGIONAL_2024), 2)  # 0.77
ATTENDANCE_2024 = 0.88


@dataclass(frozen=True)
class Lab:
    lab_id: str
    name: str
    tz: timezone


@dataclass(frozen=True)
class Agency:
    agency_id: str
    name: str
    central: bool
    home_lab: str  # where its people sit by default: regional governments use their region's Kanreg


LABS: tuple[Lab, ...] = (
    Lab("bkn-pusat-jakarta", "BKN Kantor Pusat, Jakarta", WIB),
    Lab("kanreg-i-yogyakarta", "Kanreg I Yogyakarta", WIB),
    Lab("kanreg-ii-surabaya", "Kanreg II Surabaya", WIB),
    Lab("kanreg-iii-bandung", "Kanreg III Bandung", WIB),
    Lab("kanreg-iv-makassar", "Kanreg IV Makassar", WITA),
    Lab("kanreg-v-jakarta", "Kanreg V Jakarta", WIB),
    Lab("kanreg-vi-medan", "Kanreg VI Medan", WIB),
    Lab("kanreg-vii-palembang", "Kanreg VII Palembang", WIB),
    Lab("kanreg-viii-banjarmasin", "Kanreg VIII Banjarmasin", WITA),
    Lab("kanreg-ix-jayapura", "Kanreg IX Jayapura", WIT),
    Lab("kanreg-x-denpasar", "Kanreg X Denpasar", WITA),
    Lab("kanreg-xi-manado", "Kanreg XI Manado", WITA),
    Lab("kanreg-xii-pekanbaru", "Kanreg XII Pekanbaru", WIB),
    Lab("kanreg-xiii-banda-aceh", "Kanreg XIII Banda Aceh", WIB),
    Lab("kanreg-xiv-manokwari", "Kanreg XIV Manokwari", WIT),
)
LAB_BY_ID: dict[str, Lab] = {lab.lab_id: lab for lab in LABS}

#: Central agencies sit mostly in Jakarta; their regional offices (instansi vertikal) use any Kanreg.
CENTRAL_LAB_WEIGHTS: dict[str, float] = {
    "bkn-pusat-jakarta": 0.35, "kanreg-v-jakarta": 0.15,
    **{lab.lab_id: 0.5 / 13 for lab in LABS[1:] if lab.lab_id != "kanreg-v-jakarta"},
}

_CENTRAL = [
    ("kemenkeu", "Kementerian Keuangan"), ("kemendagri", "Kementerian Dalam Negeri"),
    ("kemenkes", "Kementerian Kesehatan"), ("bappenas", "Kementerian PPN/Bappenas"),
    ("kemenpanrb", "Kementerian PANRB"),
    ("kemendikbudristek", "Kementerian Pendidikan, Kebudayaan, Riset, dan Teknologi"),
    ("kemenag", "Kementerian Agama"), ("kemenkumham", "Kementerian Hukum dan HAM"),
    ("kemenlu", "Kementerian Luar Negeri"), ("kemenhub", "Kementerian Perhubungan"),
    ("kementan", "Kementerian Pertanian"), ("kemenperin", "Kementerian Perindustrian"),
    ("kemendag", "Kementerian Perdagangan"), ("kemenpupr", "Kementerian PUPR"),
    ("kemenesdm", "Kementerian ESDM"), ("klhk", "Kementerian Lingkungan Hidup dan Kehutanan"),
    ("kkp", "Kementerian Kelautan dan Perikanan"), ("kemnaker", "Kementerian Ketenagakerjaan"),
    ("kemensos", "Kementerian Sosial"), ("kemenkominfo", "Kementerian Komunikasi dan Informatika"),
    ("atrbpn", "Kementerian ATR/BPN"), ("kemenkopukm", "Kementerian Koperasi dan UKM"),
    ("kemenpppa", "Kementerian PPPA"), ("kemenpora", "Kementerian Pemuda dan Olahraga"),
    ("kemenparekraf", "Kementerian Pariwisata dan Ekonomi Kreatif"), ("kemendesa", "Kementerian Desa PDTT"),
    ("kemenbumn", "Kementerian BUMN"), ("kemenhan", "Kementerian Pertahanan"),
    ("setneg", "Kementerian Sekretariat Negara"), ("setkab", "Sekretariat Kabinet"),
    ("bkn", "Badan Kepegawaian Negara"), ("lan", "Lembaga Administrasi Negara"),
    ("bps", "Badan Pusat Statistik"), ("bpkp", "Badan Pengawasan Keuangan dan Pembangunan"),
    ("brin", "Badan Riset dan Inovasi Nasional"), ("bnpb", "Badan Nasional Penanggulangan Bencana"),
    ("bmkg", "Badan Meteorologi, Klimatologi, dan Geofisika"), ("bpom", "Badan Pengawas Obat dan Makanan"),
    ("bssn", "Badan Siber dan Sandi Negara"), ("bnn", "Badan Narkotika Nasional"),
    ("bnpt", "Badan Nasional Penanggulangan Terorisme"), ("basarnas", "Badan Nasional Pencarian dan Pertolongan"),
    ("otorita-ikn", "Otorita Ibu Kota Nusantara"), ("anri", "Arsip Nasional Republik Indonesia"),
    ("perpusnas", "Perpustakaan Nasional"), ("big", "Badan Informasi Geospasial"),
]
_REGIONAL = [
    ("pemprov-kaltim", "Pemerintah Provinsi Kalimantan Timur", "kanreg-viii-banjarmasin"),
    ("pemkab-ppu", "Pemerintah Kabupaten Penajam Paser Utara", "kanreg-viii-banjarmasin"),
    ("pemkab-kukar", "Pemerintah Kabupaten Kutai Kartanegara", "kanreg-viii-banjarmasin"),
    ("pemkot-balikpapan", "Pemerintah Kota Balikpapan", "kanreg-viii-banjarmasin"),
    ("pemkot-samarinda", "Pemerintah Kota Samarinda", "kanreg-viii-banjarmasin"),
    ("pemprov-kalsel", "Pemerintah Provinsi Kalimantan Selatan", "kanreg-viii-banjarmasin"),
    ("pemprov-sulsel", "Pemerintah Provinsi Sulawesi Selatan", "kanreg-iv-makassar"),
    ("pemkot-makassar", "Pemerintah Kota Makassar", "kanreg-iv-makassar"),
    ("pemprov-sulut", "Pemerintah Provinsi Sulawesi Utara", "kanreg-xi-manado"),
    ("pemprov-bali", "Pemerintah Provinsi Bali", "kanreg-x-denpasar"),
    ("pemprov-papua", "Pemerintah Provinsi Papua", "kanreg-ix-jayapura"),
    ("pemprov-papua-barat", "Pemerintah Provinsi Papua Barat", "kanreg-xiv-manokwari"),
    ("pemprov-jatim", "Pemerintah Provinsi Jawa Timur", "kanreg-ii-surabaya"),
    ("pemprov-jabar", "Pemerintah Provinsi Jawa Barat", "kanreg-iii-bandung"),
    ("pemprov-diy", "Pemerintah Daerah DIY", "kanreg-i-yogyakarta"),
    ("pemprov-sumut", "Pemerintah Provinsi Sumatera Utara", "kanreg-vi-medan"),
    ("pemprov-sumsel", "Pemerintah Provinsi Sumatera Selatan", "kanreg-vii-palembang"),
    ("pemprov-riau", "Pemerintah Provinsi Riau", "kanreg-xii-pekanbaru"),
    ("pemprov-aceh", "Pemerintah Aceh", "kanreg-xiii-banda-aceh"),
]
CENTRAL_AGENCIES: tuple[Agency, ...] = tuple(Agency(i, n, True, "bkn-pusat-jakarta") for i, n in _CENTRAL)
REGIONAL_AGENCIES: tuple[Agency, ...] = tuple(Agency(i, n, False, lab) for i, n, lab in _REGIONAL)
AGENCY_BY_ID: dict[str, Agency] = {a.agency_id: a for a in CENTRAL_AGENCIES + REGIONAL_AGENCIES}

assert len(CENTRAL_AGENCIES) == 46, "2024: participants came from 46 central agencies"
assert all(a.home_lab in LAB_BY_ID for a in REGIONAL_AGENCIES)
