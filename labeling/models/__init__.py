"""Core models, one module per concern; import them from here."""

from labeling.models.annotations import (
    Annotation,
    AnnotatorSkill,
    Assignment,
    AssignmentStatus,
    GoldItem,
    GoldOrigin,
)
from labeling.models.embeddings import (
    CatalogImage,
    Embedding,
    EmbeddingSpace,
    LabelReview,
    Prototype,
    PrototypeStatus,
    ReuseMatch,
    ReuseStatus,
    ReviewStatus,
    SpaceStatus,
)
from labeling.models.items import Item, ItemSource, ItemStatus
from labeling.models.manifests import Manifest, ManifestKind
from labeling.models.mlmodels import ModelStatus, ModelVersion, Prediction, PredictionDecision
from labeling.models.projects import (
    CostMode,
    Label,
    MemberRole,
    Membership,
    Project,
    ReusePolicy,
    ThresholdChange,
    ThresholdMode,
    ThresholdScope,
)
from labeling.models.results import CostEntry, CostKind, CreditDecision, CreditOutcome

__all__ = [
    "CatalogImage",
    "Embedding",
    "EmbeddingSpace",
    "LabelReview",
    "Prototype",
    "PrototypeStatus",
    "ReuseMatch",
    "ReusePolicy",
    "ReuseStatus",
    "ReviewStatus",
    "SpaceStatus",
    "AssignmentStatus",
    "CostKind",
    "CostMode",
    "CreditOutcome",
    "GoldOrigin",
    "ManifestKind",
    "MemberRole",
    "ModelStatus",
    "PredictionDecision",
    "ThresholdMode",
    "ThresholdScope",
    "Annotation",
    "AnnotatorSkill",
    "Assignment",
    "CostEntry",
    "CreditDecision",
    "GoldItem",
    "Item",
    "ItemSource",
    "ItemStatus",
    "Label",
    "Manifest",
    "Membership",
    "ModelVersion",
    "Prediction",
    "Project",
    "ThresholdChange",
]
