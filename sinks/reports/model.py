"""What a report shows, as plain typed records read from the results store (sinks/reports/data.py).

The renderers (individual.py, recap.py) take these and nothing else, so a report can only show what the store
holds: no renderer reads the database, recomputes a score or looks at an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

#: WIB: the reports' dates and times, and the working days, are Jakarta's (BKN's own offices).
WIB = timezone(timedelta(hours=7), "WIB")

#: The nine competencies in report order, with their Indonesian names (Perban BKN 26/2019, Lampiran).
COMPETENCY_NAMES: dict[str, str] = {
    "M1": "Integritas", "M2": "Kerja Sama", "M3": "Komunikasi", "M4": "Orientasi pada Hasil",
    "M5": "Pelayanan Publik", "M6": "Pengembangan Diri dan Orang Lain", "M7": "Mengelola Perubahan",
    "M8": "Pengambilan Keputusan", "S1": "Perekat Bangsa",
}
SECTION_NAMES: dict[str, str] = {
    "mansoskul": "Manajerial dan Sosial Kultural (Mansoskul)", "emerging_skills": "Emerging Skills",
    "digital_literacy": "Literasi Digital",
}
#: SI ASN's potential fields (schemas/domain.py POTENTIAL_FIELDS) with their Indonesian names.
POTENTIAL_NAMES: dict[str, str] = {
    "berfikirKritis": "Berpikir Kritis", "intelektual": "Intelektual", "interpersonal": "Interpersonal",
    "kesadaranDiri": "Kesadaran Diri", "motivasiKomitmen": "Motivasi dan Komitmen", "total": "Total",
}
PURPOSE_NAMES: dict[str, str] = {"mapping": "Pemetaan Kompetensi", "position_filling": "Pengisian Jabatan"}
TIER_NAMES: dict[str, str] = {
    "jpt_utama": "JPT Utama", "jpt_madya": "JPT Madya", "jpt_pratama": "JPT Pratama",
    "administrator": "Administrator", "pengawas": "Pengawas", "pelaksana": "Pelaksana",
    "ahli_utama": "Ahli Utama", "ahli_madya": "Ahli Madya", "ahli_muda": "Ahli Muda",
    "ahli_pertama": "Ahli Pertama", "terampil": "Terampil",
}
#: A participant's attendance in their activity, one word each (AttendanceLine.status), and how reports say it.
ATTENDANCE_NAMES: dict[str, str] = {
    "present": "Hadir", "present_susulan": "Hadir (susulan)", "no_show": "Tidak hadir",
    "rescheduled": "Dijadwalkan ulang (susulan belum dilaksanakan)", "scheduled": "Terjadwal",
}
STANDING_NAMES: dict[str, str] = {
    "counted": "Diakui", "incomplete": "Tidak lengkap (ditahan)", "not_recognised": "Tidak diakui (lembaga)",
}
REPORT_KINDS = ("recap", "full")
KIND_NAMES: dict[str, str] = {"recap": "Laporan Rekapitulasi", "full": "Laporan Lengkap",
                              "individual": "Laporan Individu"}


@dataclass(frozen=True)
class CompetencyLine:
    code: str  # M1..M8, S1
    level: int
    standard: int
    gap: int  # level - standard, as stored

    @property
    def name(self) -> str:
        return COMPETENCY_NAMES[self.code]


@dataclass(frozen=True)
class SectionLine:
    section: str  # mansoskul | emerging_skills | digital_literacy
    score: float
    level: int
    answered: int
    items: int
    completion: str

    @property
    def name(self) -> str:
        return SECTION_NAMES.get(self.section, self.section)


@dataclass(frozen=True)
class EarlierVersion:
    """A superseded version of the same result: what the current one replaced."""

    result_version: int
    blueprint_version: str
    created_at: datetime
    jpm: float | None
    category: str | None


@dataclass(frozen=True)
class IndividualResult:
    """One current result version, as stored (results + competency_results + section_scores)."""

    nip: str
    name: str | None  # the schedule's name; None for a result stored before names were carried
    activity_id: str
    agency_id: str
    agency_name: str
    purpose: str
    position_tier: str
    session_id: str  # where it was sat (a susulan: the host session)
    host_activity_id: str | None  # set for a susulan sat in another activity's session
    organiser_id: str | None
    blueprint_id: str
    blueprint_version: str
    result_version: int
    created_at: datetime
    assessed_on: date
    valid_until: date
    jpm: float | None
    category: str | None
    standing: str
    standing_detail: str | None
    flags: list[str]
    competencies: list[CompetencyLine]  # in COMPETENCY_NAMES order; empty when Mansoskul was not taken
    sections: list[SectionLine]
    potential: dict[str, float] | None  # POTENTIAL_NAMES keys, when the blueprint defines the potential profile
    earlier: list[EarlierVersion] = field(default_factory=list)  # newest first

    @property
    def strengths(self) -> list[CompetencyLine]:
        return [c for c in self.competencies if c.gap >= 0]

    @property
    def development_areas(self) -> list[CompetencyLine]:
        return [c for c in self.competencies if c.gap < 0]


@dataclass(frozen=True)
class AttendanceLine:
    """Where one participant of the activity stands, whichever session they sat (susulan by home activity)."""

    nip: str
    name: str | None
    home_session_id: str
    status: str  # an ATTENDANCE_NAMES key
    sat_session_id: str | None  # the session they checked in to; None when absent
    susulan_session_id: str | None  # the session they were moved to, if any
    late: bool = False


@dataclass(frozen=True)
class SessionLine:
    session_id: str
    lab_id: str
    test_day: date  # the lab's local date of starts_at
    scheduled: int
    checked_in: int
    no_show: int
    rescheduled: int
    final: bool


@dataclass(frozen=True)
class HeldBackLine:
    nip: str
    name: str | None
    result_version: int
    standing: str  # incomplete | not_recognised
    standing_detail: str | None


@dataclass(frozen=True)
class ActivityData:
    """Everything of one activity the recap and the full report show, read in one transaction."""

    activity_id: str
    agency_id: str
    agency_name: str
    purpose: str
    sessions: list[SessionLine]
    first_test_day: date | None
    last_test_day: date | None  # the latest of its sessions' days and its results' assessed_on (susulan)
    results: list[IndividualResult]  # current and counted, by NIP
    held_back: list[HeldBackLine]  # current and not counted, by standing then NIP
    attendance: list[AttendanceLine]  # every participant whose home activity this is, by NIP
    open_sessions: int  # sessions whose check-in window has not closed yet: the activity is still running

    def tally(self) -> dict[str, int]:
        """scheduled / present / present_susulan / no_show / rescheduled (pending) / susulan (moved at all)."""
        out = {k: 0 for k in ATTENDANCE_NAMES}
        for line in self.attendance:
            out[line.status] += 1
        return {"scheduled_persons": len(self.attendance), "present": out["present"] + out["present_susulan"],
                "present_susulan": out["present_susulan"], "no_show": out["no_show"],
                "rescheduled_pending": out["rescheduled"],
                "susulan": sum(1 for a in self.attendance if a.susulan_session_id)}


@dataclass(frozen=True)
class ReportMeta:
    """Which build of which report a document is: printed on every page."""

    activity_id: str
    kind: str  # recap | full (an individual report carries its activity's build)
    version: int
    built_at: datetime
    supersedes: int | None = None  # the report version this one replaces
    supersedes_built_at: datetime | None = None
    reason: str | None = None  # why a new version: e.g. "hasil dinilai ulang (rescore)"
