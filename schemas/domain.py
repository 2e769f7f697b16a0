"""Vocabulary shared by every event: competencies, sections, position tiers, purposes (domain.md §3-4)."""

from __future__ import annotations

from enum import StrEnum


class Competency(StrEnum):
    M1 = "M1"
    M2 = "M2"
    M3 = "M3"
    M4 = "M4"
    M5 = "M5"
    M6 = "M6"
    M7 = "M7"
    M8 = "M8"
    S1 = "S1"


#: SI ASN field names of the nine competencies (POST /kompetensi/kompetensi/save).
SIASN_FIELD: dict[Competency, str] = {
    Competency.M1: "integritas",
    Competency.M2: "kerjasama",
    Competency.M3: "komunikasi",
    Competency.M4: "orientasiPadaHasil",
    Competency.M5: "pelayananPublik",
    Competency.M6: "pengembanganDiriDanOrla",
    Competency.M7: "mengelolaPerubahan",
    Competency.M8: "pengambilanKeputusan",
    Competency.S1: "perekatBangsa",
}

#: The five potential dimensions of SI ASN's ``POST /kompetensi/potensi/save``; it also takes their ``total``.
POTENTIAL_FIELDS: tuple[str, ...] = ("berfikirKritis", "intelektual", "interpersonal", "kesadaranDiri",
                                     "motivasiKomitmen")


class Section(StrEnum):
    MANSOSKUL = "mansoskul"
    EMERGING_SKILLS = "emerging_skills"
    DIGITAL_LITERACY = "digital_literacy"


class PositionTier(StrEnum):
    JPT_UTAMA = "jpt_utama"
    JPT_MADYA = "jpt_madya"
    JPT_PRATAMA = "jpt_pratama"
    ADMINISTRATOR = "administrator"
    PENGAWAS = "pengawas"
    PELAKSANA = "pelaksana"
    AHLI_UTAMA = "ahli_utama"
    AHLI_MADYA = "ahli_madya"
    AHLI_MUDA = "ahli_muda"
    AHLI_PERTAMA = "ahli_pertama"
    TERAMPIL = "terampil"


class Purpose(StrEnum):
    MAPPING = "mapping"
    POSITION_FILLING = "position_filling"


class AttendanceStatus(StrEnum):
    SCHEDULED = "scheduled"
    CHECKED_IN = "checked_in"
    NO_SHOW = "no_show"
    RESCHEDULED = "rescheduled"
    UNSCHEDULED = "unscheduled"
    UNEXPECTED = "unexpected"  # checked in without being scheduled in that session
